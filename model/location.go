package model

import (
	"strconv"
	"strings"
)

// Location is a frame's "FILE:LINE" (the sample batch's frame_locations entry)
// for a function defined in file at line (> 0).
func Location(file string, line int) string {
	return file + ":" + strconv.Itoa(line)
}

// SplitLocation parses a Location; ok is false for "" and for text not of that form.
func SplitLocation(loc string) (file string, line int, ok bool) {
	i := strings.LastIndexByte(loc, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(loc[i+1:])
	if err != nil || n <= 0 || loc[i+1] == '+' {
		return "", 0, false
	}
	return loc[:i], n, true
}

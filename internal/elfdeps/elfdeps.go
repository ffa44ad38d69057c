package elfdeps

import (
	"debug/elf"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
)

// Interpreter returns the dynamic loader file names (PT_INTERP), or "" for a static
// executable or a library.
func Interpreter(file string) (string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", fmt.Errorf("read elf %s: %w", file, err)
	}
	defer f.Close()
	return interpreter(f)
}

func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return "", fmt.Errorf("read PT_INTERP: %w", err)
			}
			return strings.TrimRight(string(b), "\x00"), nil
		}
	}
	return "", nil
}

// Closure follows the dynamic loaders and DT_NEEDED libraries of roots, transitively,
// looking each library up in dirs in order, and returns load path → file on this host
// with symlinks resolved (the load path is the directory it was found in joined with
// its name, or the loader path as written). Roots themselves are not included unless
// another file needs them.
func Closure(roots, dirs []string) (map[string]string, error) {
	libs := map[string]string{}
	queue := append([]string(nil), roots...)
	for len(queue) > 0 {
		file := queue[0]
		queue = queue[1:]
		needed, interp, err := dynamic(file)
		if err != nil {
			return nil, err
		}
		if interp != "" && libs[interp] == "" {
			host, err := filepath.EvalSymlinks(interp)
			if err != nil {
				return nil, fmt.Errorf("loader %s of %s: %w", interp, file, err)
			}
			libs[interp] = host
		}
		for _, n := range needed {
			loadPath, host, err := find(n, dirs)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %w", file, n, err)
			}
			if _, seen := libs[loadPath]; !seen {
				libs[loadPath] = host
				queue = append(queue, host)
			}
		}
	}
	return libs, nil
}

func dynamic(file string) (needed []string, interp string, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, "", fmt.Errorf("read elf %s: %w", file, err)
	}
	defer f.Close()
	if needed, err = f.ImportedLibraries(); err != nil {
		return nil, "", fmt.Errorf("dynamic section of %s: %w", file, err)
	}
	if interp, err = interpreter(f); err != nil {
		return nil, "", fmt.Errorf("%s: %w", file, err)
	}
	return needed, interp, nil
}

func find(soname string, dirs []string) (loadPath, host string, err error) {
	for _, d := range dirs {
		p := path.Join(d, soname)
		if h, err := filepath.EvalSymlinks(p); err == nil {
			return p, h, nil
		}
	}
	return "", "", fmt.Errorf("not found in %v", dirs)
}

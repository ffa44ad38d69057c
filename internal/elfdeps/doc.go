// Package elfdeps finds what an ELF executable or library needs to load: its dynamic
// loader (PT_INTERP) and, transitively, the shared libraries its dynamic section names
// (DT_NEEDED), resolved in a list of directories. It reads headers only; unlike ldd it
// never runs the loader on the file. The image builder uses it to put exactly those
// files into the aggregator image.
package elfdeps

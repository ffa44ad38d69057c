// Package vdso reads the vDSO, the small shared object the kernel maps into
// every process as "[vdso]" (clock_gettime, gettimeofday, time, getcpu). It
// has no file on disk, but the kernel maps one image per ABI into every
// process, so the agent reads its own copy once and uses it for every
// 64-bit process: agent/symbolize for names, agent/unwind for its .eh_frame.
package vdso

// Package storagetest gives test binaries outside aggregator/storage the one embedded
// store they may open: chDB runs a single engine per process, so a package's tests share
// one store opened in TestMain, and skip (naming the setup command) when the chDB
// library is not installed.
package storagetest

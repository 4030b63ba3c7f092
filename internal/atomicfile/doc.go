// Package atomicfile replaces a file's contents so that a reader, or a crash,
// sees either the old contents or the new ones, never a mix or a truncation.
//
// [Write] writes to a temporary file in the target's directory (created with
// the final permissions from the start, so a private key is never readable by
// others even for an instant), syncs it, renames it over the target and syncs
// the directory so the rename itself survives a power loss.
//
// It is not a general file API: no appends, no locking between concurrent
// writers (the last rename wins), and it does not create directories.
package atomicfile

//go:build !linux

package storage

import "io/fs"

// stamp is what stat says of a file: its size and modification time (the controller's images
// run on Linux, where the inode and ctime count too).
type stamp struct {
	size  int64
	mtime int64 // nanoseconds
}

func stampOf(info fs.FileInfo) stamp {
	return stamp{size: info.Size(), mtime: info.ModTime().UnixNano()}
}

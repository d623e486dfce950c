package storage

import (
	"io/fs"
	"syscall"
)

// stamp is what stat says of a file. Any write to it, rename over it or change of its links
// moves its ctime, which no user can set back: an equal stamp means untouched content.
type stamp struct {
	ino          uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

func stampOf(info fs.FileInfo) stamp {
	st := stamp{size: info.Size(), mtime: info.ModTime().UnixNano()}
	if sys, ok := info.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
		st.ctime = sys.Ctim.Nano()
	}
	return st
}

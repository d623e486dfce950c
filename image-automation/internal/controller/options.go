package controller

import (
	"time"

	"github.com/plumb-dev/plumb/shared/hostlimit"
)

// Options are what cmd/main.go passes every reconciler's SetupWithManager.
type Options struct {
	// Concurrent is the number of reconciles of one kind that may run at once.
	Concurrent int
	// Hosts bounds the registry scans in flight per registry host; nil bounds nothing.
	Hosts *hostlimit.Limiter
	// HostBusyRetry brings an ImageRepository whose registry was busy back after about this
	// long; 0 leaves it to the default wait interval.
	HostBusyRetry time.Duration
}

package controller

// Options are what cmd/main.go passes every reconciler's SetupWithManager.
type Options struct {
	// Concurrent is the number of reconciles of one kind that may run at once.
	Concurrent int
}

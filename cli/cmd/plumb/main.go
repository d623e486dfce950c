// Command plumb installs Plumb, bootstraps clusters from Git and shows and drives what the
// controllers do.
package main

import (
	"os"

	"github.com/plumb-dev/plumb/cli/internal/cmd"
)

func main() { os.Exit(cmd.Main()) }

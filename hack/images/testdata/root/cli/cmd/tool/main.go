// Command tool stands in for the plumb command in the image tests: a program outside the
// controllers' layout (<name>/cmd, /manager, a container named manager).
package main

import "fmt"

func main() { fmt.Println("tool") }

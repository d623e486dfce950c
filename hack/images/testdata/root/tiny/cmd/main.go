// Command tiny stands in for a controller in the image tests: a static binary that builds in a
// second for any platform.
package main

import "fmt"

func main() { fmt.Println("tiny") }

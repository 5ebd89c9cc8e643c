//go:build !race

package main

// raceEnabled is true under the race detector, whose instrumentation
// allocates: allocation assertions skip when it is set.
const raceEnabled = false

//go:build race

package kernel

// raceEnabled is set when testing with the race detector, which makes the
// reference kernels about ten times slower; the big real-shape cases then
// run with fewer thread configurations.
const raceEnabled = true

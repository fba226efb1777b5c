//go:build race

package graph

// raceEnabled: the race detector allocates in sync.Pool, so allocation
// counts are not checked under it.
const raceEnabled = true

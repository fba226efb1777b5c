//go:build !linux && amd64 && !purego

package kernel

// amxPermit: AMX is used on Linux only (other systems grant the tile state
// differently, untested here).
func amxPermit() bool { return false }

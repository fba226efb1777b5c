package kernel

import "github.com/mobileone-go/mobileone/internal/cpu"

// levelSet holds the kernels of one op family by implementation level: the
// pure-Go twins, and the assembly sets this build has (asm[l], nil where
// there is none). active is the set new ops use, chosen once from
// cpu.Selected(); tests switch it with set.
type levelSet[T any] struct {
	pureGo *T
	asm    []*T
	active *T
}

func newLevelSet[T any](pureGo *T, asm []*T) *levelSet[T] {
	s := &levelSet[T]{pureGo: pureGo, asm: asm}
	s.active = s.best(cpu.Selected())
	return s
}

// at returns the kernels of level l, or nil if this build has none.
func (s *levelSet[T]) at(l cpu.Level) *T {
	if l == cpu.PureGo {
		return s.pureGo
	}
	if int(l) < len(s.asm) {
		return s.asm[l]
	}
	return nil
}

// levels lists the levels this build and this processor can run, lowest
// first.
func (s *levelSet[T]) levels() []cpu.Level {
	var ls []cpu.Level
	for l := cpu.PureGo; l <= cpu.Detected.Best(); l++ {
		if s.at(l) != nil {
			ls = append(ls, l)
		}
	}
	return ls
}

// best returns the kernels of the highest level at or below l.
func (s *levelSet[T]) best(l cpu.Level) *T {
	for ; l > cpu.PureGo; l-- {
		if k := s.at(l); k != nil {
			return k
		}
	}
	return s.pureGo
}

// set makes ops created from now on use level l (test hook; not safe
// while ops are being created or, for the NCHW depthwise kernels, run) and
// returns a function restoring the previous choice.
func (s *levelSet[T]) set(l cpu.Level) (restore func()) {
	old := s.active
	s.active = s.best(l)
	return func() { s.active = old }
}

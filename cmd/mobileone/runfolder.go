package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mobileone-go/mobileone/train"
)

// resumeFlagsOnly refuses the flags a dense trainer's --resume does not
// take (all but --resume, --threads and --task): the run's own are used.
func resumeFlagsOnly(set map[string]bool) error {
	for f := range set {
		if f != "resume" && f != "threads" && f != "task" {
			return fmt.Errorf("--resume takes no other flags (but --threads), not --%s: the run's own settings are used", f)
		}
	}
	return nil
}

// newRunFolder checks -o for a new training run: given, and not holding
// a run already (usage prints the command's help when -o is missing).
func newRunFolder(out string, usage func()) error {
	if out == "" {
		usage()
		return errors.New("need -o RUN_FOLDER (or --resume RUN_FOLDER)")
	}
	if _, err := os.Stat(filepath.Join(out, train.CheckpointName)); err == nil {
		return fmt.Errorf("%s already holds a run: continue it with --resume %s, or choose another folder", out, out)
	}
	return nil
}

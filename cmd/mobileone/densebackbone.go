package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// denseBackboneArgs are the backbone flags of the dense-prediction
// trainers (train --task segment, train --task detect).
type denseBackboneArgs struct {
	Variant, Widths, Blocks string
	K                       int
	Init                    string
}

// denseBackbone returns the backbone configuration a dense-prediction
// trainer builds: the --init checkpoint's (then also its state dict, to
// load into the new net) or the variant's, with --channels-override,
// --blocks and --k applied. set holds the flags given; task names the
// trainer in errors ("segmentation", "detection").
func denseBackbone(a denseBackboneArgs, set map[string]bool, task string) (model.Config, map[string]*tensor.Tensor, error) {
	if a.Init != "" {
		for _, f := range []string{"k", "channels-override", "blocks"} {
			if set[f] {
				return model.Config{}, nil, fmt.Errorf("--%s cannot be combined with --init: the checkpoint fixes the architecture", f)
			}
		}
		sd, _, err := readStateDict(a.Init)
		if err != nil {
			return model.Config{}, nil, err
		}
		if _, ok := sd["backbone.stage0.reparam_conv.weight"]; ok {
			return model.Config{}, nil, fmt.Errorf("--init %s is a fused segmentation model or detector; --init takes a train-time classification checkpoint", a.Init)
		}
		c, _, err := model.CanonicalKeys(sd)
		if err != nil {
			return model.Config{}, nil, fmt.Errorf("--init %s: %w", a.Init, err)
		}
		cfg, fused, err := model.DetectConfig(c)
		if err != nil {
			return model.Config{}, nil, fmt.Errorf("--init %s: %w", a.Init, err)
		}
		if fused {
			return model.Config{}, nil, fmt.Errorf("--init %s is fused: the backbone needs a train-time (unfused) checkpoint such as mobileone_sN_unfused.pth.tar", a.Init)
		}
		if set["m"] {
			v, err := model.Variant(a.Variant)
			if err != nil {
				return model.Config{}, nil, err
			}
			if v.Channels != cfg.Channels || v.Blocks != cfg.Blocks {
				return model.Config{}, nil, fmt.Errorf("--init %s has widths %v and blocks %v, not those of -m %s (%v, %v); -m is not needed with --init",
					a.Init, cfg.Channels, cfg.Blocks, a.Variant, v.Channels, v.Blocks)
			}
		}
		if cfg.InChannels != 3 {
			return model.Config{}, nil, fmt.Errorf("--init %s takes %d input channels; %s trains on RGB images", a.Init, cfg.InChannels, task)
		}
		return cfg, sd, nil
	}
	cfg, err := model.Variant(a.Variant)
	if err != nil {
		return model.Config{}, nil, fmt.Errorf("-m: %w", err)
	}
	if a.Widths != "" {
		parts := strings.Split(a.Widths, ",")
		if len(parts) != 5 {
			return model.Config{}, nil, fmt.Errorf("--channels-override wants 5 numbers (stem and 4 stages), got %q", a.Widths)
		}
		for i, p := range parts {
			if cfg.Channels[i], err = strconv.Atoi(strings.TrimSpace(p)); err != nil || cfg.Channels[i] < 1 {
				return model.Config{}, nil, fmt.Errorf("--channels-override %q: want 5 positive numbers", a.Widths)
			}
		}
	}
	if a.Blocks != "" {
		parts := strings.Split(a.Blocks, ",")
		if len(parts) != 4 {
			return model.Config{}, nil, fmt.Errorf("--blocks wants 4 numbers, got %q", a.Blocks)
		}
		for i, p := range parts {
			if cfg.Blocks[i], err = strconv.Atoi(strings.TrimSpace(p)); err != nil || cfg.Blocks[i] < 1 {
				return model.Config{}, nil, fmt.Errorf("--blocks %q: want 4 positive numbers", a.Blocks)
			}
			cfg.SEPairs[i] = min(cfg.SEPairs[i], cfg.Blocks[i])
		}
	}
	if a.K > 0 {
		cfg.K = a.K
	}
	if a.Widths != "" || a.Blocks != "" || a.K > 0 {
		cfg.Name = ""
	}
	return cfg, nil, nil
}

package model

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone/tensor"
)

// Naming is a checkpoint key convention.
type Naming string

// The key conventions LoadCheckpoint understands.
const (
	NamingAuthors Naming = "authors" // stage0.rbr_conv.0.conv.weight, stage1.0.reparam_conv.weight, linear.weight
	NamingTimm    Naming = "timm"    // stem.conv_kxk.0.conv.weight, stages.0.0.identity.weight, head.fc.weight
)

var (
	timmStages = regexp.MustCompile(`^stages\.(\d+)\.`)
	timmParts  = strings.NewReplacer(
		".conv_kxk.", ".rbr_conv.",
		".conv_scale.", ".rbr_scale.",
		".identity.", ".rbr_skip.",
		".attn.fc1.", ".se.reduce.",
		".attn.fc2.", ".se.expand.",
	)
)

// CanonicalKeys returns sd with keys renamed to the authors' convention and
// the naming it found. It removes a "module." prefix (DataParallel) and maps
// timm's names by rule, never by position.
func CanonicalKeys(sd map[string]*tensor.Tensor) (map[string]*tensor.Tensor, Naming, error) {
	naming := NamingAuthors
	for k := range sd {
		k = strings.TrimPrefix(k, "module.")
		if strings.HasPrefix(k, "stem.") || strings.HasPrefix(k, "stages.") || strings.HasPrefix(k, "head.") {
			naming = NamingTimm
			break
		}
	}
	out := make(map[string]*tensor.Tensor, len(sd))
	for k, t := range sd {
		nk := strings.TrimPrefix(k, "module.")
		if naming == NamingTimm {
			switch {
			case strings.HasPrefix(nk, "stem."):
				nk = "stage0." + strings.TrimPrefix(nk, "stem.")
			case strings.HasPrefix(nk, "head.fc."):
				nk = "linear." + strings.TrimPrefix(nk, "head.fc.")
			default:
				if m := timmStages.FindStringSubmatch(nk); m != nil {
					i, _ := strconv.Atoi(m[1])
					nk = fmt.Sprintf("stage%d.", i+1) + nk[len(m[0]):]
				}
			}
			nk = timmParts.Replace("." + nk)[1:]
		}
		if _, dup := out[nk]; dup {
			return nil, naming, fmt.Errorf("checkpoint has key %q twice (after renaming %q)", nk, k)
		}
		out[nk] = t
	}
	return out, naming, nil
}

// ToNaming renames an authors'-convention state dict to another convention.
func ToNaming(keys []string, sd map[string]*tensor.Tensor, n Naming) ([]string, map[string]*tensor.Tensor) {
	if n != NamingTimm {
		return keys, sd
	}
	nkeys := make([]string, len(keys))
	out := make(map[string]*tensor.Tensor, len(sd))
	for i, k := range keys {
		nk := k
		switch {
		case strings.HasPrefix(nk, "stage0."):
			nk = "stem." + strings.TrimPrefix(nk, "stage0.")
		case strings.HasPrefix(nk, "linear."):
			nk = "head.fc." + strings.TrimPrefix(nk, "linear.")
		default:
			if m := authorsStage.FindStringSubmatch(nk); m != nil {
				s, _ := strconv.Atoi(m[1])
				nk = fmt.Sprintf("stages.%d.", s-1) + nk[len(m[0]):]
			}
		}
		nk = authorsParts.Replace("." + nk)[1:]
		nkeys[i] = nk
		out[nk] = sd[k]
	}
	return nkeys, out
}

var (
	authorsStage = regexp.MustCompile(`^stage(\d+)\.`)
	authorsParts = strings.NewReplacer(
		".rbr_conv.", ".conv_kxk.",
		".rbr_scale.", ".conv_scale.",
		".rbr_skip.", ".identity.",
		".se.reduce.", ".attn.fc1.",
		".se.expand.", ".attn.fc2.",
	)
)

var blockKey = regexp.MustCompile(`^stage([1-4])\.(\d+)\.`)

// DetectConfig infers the architecture from an authors'-convention state
// dict's key names and tensor shapes, and reports whether it is fused. A
// configuration equal to a zoo variant carries that variant's name. The stem
// stride cannot be seen in the weights; it is taken to be 2.
func DetectConfig(sd map[string]*tensor.Tensor) (Config, bool, error) {
	shape := func(k string) ([]int, bool) {
		t, ok := sd[k]
		if !ok {
			return nil, false
		}
		return t.Shape, true
	}
	var cfg Config
	cfg.StemStride = 2
	var fused bool
	stemW, ok := shape("stage0.reparam_conv.weight")
	if ok {
		fused = true
	} else if stemW, ok = shape("stage0.rbr_conv.0.conv.weight"); !ok {
		return cfg, false, fmt.Errorf("not a MobileOne checkpoint: no stem weight (stage0.reparam_conv.weight, stage0.rbr_conv.0.conv.weight, or timm's stem.*)%s", sample(sd))
	}
	if len(stemW) != 4 || stemW[2] != 3 || stemW[3] != 3 {
		return cfg, false, fmt.Errorf("stem weight has shape %s, want (C, in, 3, 3)", tensor.ShapeString(stemW))
	}
	cfg.Channels[0], cfg.InChannels = stemW[0], stemW[1]
	convKey := func(p string) string {
		if fused {
			return p + ".reparam_conv.weight"
		}
		return p + ".rbr_conv.0.conv.weight"
	}
	// Count blocks per stage from the key names.
	maxJ := [4]int{-1, -1, -1, -1}
	for k := range sd {
		if m := blockKey.FindStringSubmatch(k); m != nil {
			s, _ := strconv.Atoi(m[1])
			j, err := strconv.Atoi(m[2])
			if err != nil || j > 10000 {
				return cfg, false, fmt.Errorf("key %q: block index out of range", k)
			}
			maxJ[s-1] = max(maxJ[s-1], j)
		}
	}
	for s := 0; s < 4; s++ {
		if maxJ[s] < 1 {
			return cfg, false, fmt.Errorf("checkpoint has no complete stage%d (need depthwise and pointwise blocks stage%d.0 and stage%d.1)", s+1, s+1, s+1)
		}
		if maxJ[s]%2 == 0 {
			return cfg, false, fmt.Errorf("stage%d ends with depthwise block stage%d.%d without its pointwise block", s+1, s+1, maxJ[s])
		}
		cfg.Blocks[s] = (maxJ[s] + 1) / 2
		last := fmt.Sprintf("stage%d.%d", s+1, maxJ[s])
		w, ok := shape(convKey(last))
		if !ok {
			return cfg, false, fmt.Errorf("checkpoint is missing key %q", convKey(last))
		}
		if len(w) != 4 {
			return cfg, false, fmt.Errorf("key %q has shape %s, want (out, in, 1, 1)", convKey(last), tensor.ShapeString(w))
		}
		cfg.Channels[s+1] = w[0]
		for p := cfg.Blocks[s] - 1; p >= 0; p-- {
			if _, ok := sd[fmt.Sprintf("stage%d.%d.se.reduce.weight", s+1, 2*p)]; !ok {
				break
			}
			cfg.SEPairs[s]++
		}
	}
	if fused {
		cfg.K = 1 // not visible in fused weights
	} else {
		for cfg.K = 0; ; cfg.K++ {
			if _, ok := sd[fmt.Sprintf("stage1.0.rbr_conv.%d.conv.weight", cfg.K)]; !ok {
				break
			}
		}
	}
	if w, ok := shape("linear.weight"); ok {
		if len(w) != 2 {
			return cfg, false, fmt.Errorf("key \"linear.weight\" has shape %s, want (classes, %d)", tensor.ShapeString(w), cfg.Channels[4])
		}
		cfg.NumClasses = w[0]
	}
	for _, z := range Zoo {
		zz := z
		if fused {
			zz.K = 1
		}
		if zz.SameArchitecture(cfg) {
			cfg.Name, cfg.ResizeShort = z.Name, z.ResizeShort
			if fused {
				cfg.K = z.K
			}
			break
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, err
	}
	return cfg, fused, nil
}

func sample(sd map[string]*tensor.Tensor) string {
	if len(sd) == 0 {
		return "; the checkpoint holds no tensors"
	}
	keys := make([]string, 0, len(sd))
	for k := range sd {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Sprintf("; first key is %q", keys[0])
}

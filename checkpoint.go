package mobileone

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/fsutil"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// Checkpoint formats recognised by Load.
const (
	FormatPyTorch     = "pytorch"     // torch.save zip archive (.pth, .pth.tar, .pt)
	FormatSafetensors = "safetensors" // .safetensors
)

// Metadata keys this package writes into safetensors files.
const (
	metaFormat  = "format"     // "mobileone"
	metaVariant = "variant"    // s0..s4 or "custom"
	metaNaming  = "naming"     // authors | timm
	metaFused   = "fused"      // "true" | "false"
	metaConfig  = "config"     // model.Config as JSON
	metaLabels  = "labels"     // JSON array of class names (optional)
	metaPrep    = "preprocess" // imageproc.Params as JSON (optional)
)

// LoadOptions adjusts Load.
type LoadOptions struct {
	// Variant, if set (s0..s4), must match the checkpoint's architecture.
	Variant string
	// KeepUnfused keeps a train-time checkpoint in its branched form; by
	// default it is re-parameterised at load time.
	KeepUnfused bool
	// StemStride overrides the stem stride (not visible in weights) for
	// PyTorch checkpoints of custom models; 0 keeps the default of 2.
	StemStride int
}

// detectFormat sniffs the first bytes of a checkpoint file.
func detectFormat(head []byte) (string, error) {
	switch {
	case len(head) >= 4 && bytes.Equal(head[:4], []byte("PK\x03\x04")):
		return FormatPyTorch, nil
	case len(head) >= 2 && head[0] == 0x80 && head[1] <= 5:
		return FormatPyTorch, nil // legacy torch.save; pth reports it clearly
	case len(head) >= 9 && head[8] == '{':
		return FormatSafetensors, nil
	case len(head) == 0:
		return "", fmt.Errorf("file is empty")
	}
	return "", fmt.Errorf("not a checkpoint: neither a PyTorch zip archive nor a safetensors file")
}

// readTensors reads the raw tensors and metadata of a checkpoint.
func readTensors(r io.ReaderAt, size int64) (map[string]*tensor.Tensor, map[string]string, string, error) {
	head := make([]byte, 16)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, nil, "", err
	}
	kind, err := detectFormat(head[:n])
	if err != nil {
		return nil, nil, "", err
	}
	switch kind {
	case FormatPyTorch:
		sd, meta, err := pth.LoadWithMetadata(r, size)
		return sd, meta, kind, err
	default:
		sf, err := safetensors.Read(r, size)
		if err != nil {
			return nil, nil, kind, err
		}
		return sf.Tensors, sf.Metadata, kind, nil
	}
}

// Load reads a MobileOne checkpoint: the authors' fused or unfused
// torch.save files, timm-named files, or safetensors written by Save. The
// architecture is recognised from the tensors' names and shapes (or from the
// file's metadata); key names are mapped to the authors' convention by rule.
// Unfused checkpoints are re-parameterised unless opts.KeepUnfused is set.
func Load(path string, opts LoadOptions) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a folder, not a checkpoint file", path)
	}
	return LoadReader(f, st.Size(), path, opts)
}

// LoadReader is Load for a checkpoint held in r (size bytes), e.g. one
// embedded in a program; name is used in errors and as Source.
func LoadReader(r io.ReaderAt, size int64, name string, opts LoadOptions) (*Model, error) {
	raw, meta, kind, err := readTensors(r, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m, err := fromTensors(raw, meta, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m.Source, m.Format = name, kind
	return m, nil
}

func fromTensors(raw map[string]*tensor.Tensor, meta map[string]string, opts LoadOptions) (*Model, error) {
	if meta["format"] == "mobileone-train" {
		return nil, errors.New("a training checkpoint (the state of a run, for mobileone train --resume), not a model: " +
			"a run writes its models, model.safetensors (fused) and model_unfused.pth.tar, into the run folder when it ends " +
			"(an interrupted run: finish it with mobileone train --resume RUN_FOLDER)")
	}
	sd, naming, err := model.CanonicalKeys(raw)
	if err != nil {
		return nil, err
	}
	cfg, fused, err := model.DetectConfig(sd)
	if err != nil {
		return nil, err
	}
	var labels []string
	var assumed Assumed
	c, ok := meta[metaConfig]
	if !ok {
		// A plain state dict: nothing in it says how the stem strides.
		assumed.StemStride = opts.StemStride == 0
	} else {
		var mc model.Config
		if err := json.Unmarshal([]byte(c), &mc); err != nil {
			return nil, fmt.Errorf("metadata %q is not valid JSON: %v", metaConfig, err)
		}
		if !fused && mc.K != cfg.K {
			return nil, fmt.Errorf("metadata says k=%d but the checkpoint has %d conv branches", mc.K, cfg.K)
		}
		mc.K = cfg.K
		if !mc.SameArchitecture(withStride(cfg, mc.StemStride)) {
			return nil, fmt.Errorf("metadata config (%s) does not match the tensors (%s)", mc.Describe(), cfg.Describe())
		}
		cfg = mc
	}
	if l, ok := meta[metaLabels]; ok {
		if err := json.Unmarshal([]byte(l), &labels); err != nil {
			return nil, fmt.Errorf("metadata %q is not a JSON list of strings: %v", metaLabels, err)
		}
	}
	var prep *imageproc.Params
	if p, ok := meta[metaPrep]; ok {
		prep = new(imageproc.Params)
		if err := json.Unmarshal([]byte(p), prep); err != nil {
			return nil, fmt.Errorf("metadata %q is not valid JSON: %v", metaPrep, err)
		}
		if prep.Crop < 1 || prep.Crop > 4096 || prep.ResizeShort < 0 || prep.ResizeShort > 4096 || prep.Std[0] == 0 {
			return nil, fmt.Errorf("metadata %q has a bad resize %d, crop %d or a zero std", metaPrep, prep.ResizeShort, prep.Crop)
		}
	}
	if opts.StemStride != 0 {
		cfg.StemStride = opts.StemStride
	}
	assumed.Preprocess = prep == nil
	assumed.Labels = labels == nil
	if opts.Variant != "" {
		want, err := model.Variant(opts.Variant)
		if err != nil {
			return nil, err
		}
		w := want
		if fused {
			w.K = cfg.K
		}
		if !w.SameArchitecture(cfg) {
			got := cfg.Name
			if got == "" {
				got = "a custom model (" + cfg.Describe() + ")"
			}
			return nil, fmt.Errorf("checkpoint is %s, not %s as requested", got, want.Name)
		}
	}
	mm, err := model.New(cfg, fused)
	if err != nil {
		return nil, err
	}
	if err := mm.LoadStateDict(sd); err != nil {
		return nil, err
	}
	if !fused && !opts.KeepUnfused {
		mm = mm.Fuse()
	}
	out := wrap(mm)
	out.Naming, out.Labels, out.Preprocess, out.Assumed = string(naming), labels, prep, assumed
	return out, nil
}

func withStride(c model.Config, s int) model.Config {
	c.StemStride = s
	return c
}

// Assumed says which settings a loaded checkpoint did not store, so that
// their values come from defaults rather than from the file. A plain
// PyTorch state dict (the authors' checkpoints, or any torch.save of
// model.state_dict()) stores weights only; files written by Save,
// SavePyTorch or "mobileone train" store all three.
type Assumed struct {
	// StemStride: the stem stride (invisible in the weights) was not in the
	// file nor in LoadOptions.StemStride; 2, the zoo's, was assumed.
	StemStride bool
	// Preprocess: no preprocessing was stored; Preprocessing derives
	// ImageNet's from the configuration.
	Preprocess bool
	// Labels: no class names were stored; ClassNames gives ImageNet's for a
	// 1000-class model, else "class N".
	Labels bool
}

// Any reports whether anything was assumed.
func (a Assumed) Any() bool { return a.StemStride || a.Preprocess || a.Labels }

// ImageNetShaped reports whether the model has ImageNet's shape (1000
// classes, RGB input): for such a model the defaults behind Assumed are
// those of the authors' checkpoints.
func (m *Model) ImageNetShaped() bool {
	return m.Config.NumClasses == 1000 && m.Config.InChannels == 3
}

// SaveOptions adjusts Save.
type SaveOptions struct {
	// Half stores weights as float16 (about half the size); default float32.
	Half bool
	// Naming selects the key convention: "authors" (default) or "timm".
	Naming string
}

// Save writes the model's weights as a safetensors file, atomically, with
// its architecture, naming and class labels in the metadata.
func (m *Model) Save(path string, opts SaveOptions) error {
	keys, sd := m.StateDict()
	naming := model.NamingAuthors
	switch opts.Naming {
	case "", "authors":
	case "timm":
		naming = model.NamingTimm
	default:
		return fmt.Errorf("unknown key naming %q (want authors or timm)", opts.Naming)
	}
	keys, sd = model.ToNaming(keys, sd, naming)
	meta, err := m.metadata(naming)
	if err != nil {
		return err
	}
	dt := safetensors.DType("F32")
	if opts.Half {
		dt = safetensors.DType("F16")
	}
	return safetensors.WriteFile(path, keys, sd, meta, dt)
}

// SavePyTorch writes the model's weights, atomically, as a torch.save file
// in the authors' key naming (a plain state_dict: torch.load and the
// authors' MobileOne class load it as it is), with the metadata Save
// writes (configuration, class labels, preprocessing) in an extra archive
// entry that PyTorch ignores and Load reads (pth.MetadataEntry). A train-time
// model stays train-time: this is how a run's model_unfused.pth.tar is
// written.
func (m *Model) SavePyTorch(path string) error {
	keys, sd := m.StateDict()
	meta, err := m.metadata(model.NamingAuthors)
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, func(w io.Writer) error { return pth.SaveWithMetadata(w, keys, sd, meta) })
}

// metadata is what Save and SavePyTorch store beside the weights.
func (m *Model) metadata(naming model.Naming) (map[string]string, error) {
	cfgJSON, err := json.Marshal(m.Config)
	if err != nil {
		return nil, err
	}
	variant := m.Config.Name
	if variant == "" {
		variant = "custom"
	}
	meta := map[string]string{
		metaFormat:  "mobileone",
		metaVariant: variant,
		metaNaming:  string(naming),
		metaFused:   strconv.FormatBool(m.IsFused()),
		metaConfig:  string(cfgJSON),
	}
	if len(m.Labels) > 0 {
		l, err := json.Marshal(m.Labels)
		if err != nil {
			return nil, err
		}
		meta[metaLabels] = string(l)
	}
	if m.Preprocess != nil {
		p, err := json.Marshal(m.Preprocess)
		if err != nil {
			return nil, err
		}
		meta[metaPrep] = string(p)
	}
	return meta, nil
}

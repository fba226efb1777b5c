package train

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/tensor"
)

// jsonField is one JSON-encoded metadata entry of a run checkpoint and
// where to decode it.
type jsonField struct {
	key string
	v   any
}

// denseCheckpoint is a dense-prediction run's checkpoint (segmentation,
// detection) as ResumeSeg and ResumeSSD read it.
type denseCheckpoint struct {
	path  string
	size  int
	meta  map[string]string         // the "meta." entries, prefix removed
	model map[string]*tensor.Tensor // "model/" tensors, prefix removed
	sgd   map[string]*tensor.Tensor // "sgd/" tensors, prefix removed
}

// readDenseCheckpoint reads dir's checkpoint, refuses one whose format is
// not format (what names the kind in the error) and decodes fields.
func readDenseCheckpoint(dir, format, what string, fields []jsonField) (*denseCheckpoint, error) {
	path := filepath.Join(dir, CheckpointName)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if f.Metadata["format"] != format {
		return nil, fmt.Errorf("%s is not a %s training checkpoint", path, what)
	}
	for _, p := range fields {
		if err := json.Unmarshal([]byte(f.Metadata[p.key]), p.v); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", path, p.key, err)
		}
	}
	c := &denseCheckpoint{path: path, meta: map[string]string{},
		model: map[string]*tensor.Tensor{}, sgd: map[string]*tensor.Tensor{}}
	if c.size, err = strconv.Atoi(f.Metadata["size"]); err != nil {
		return nil, fmt.Errorf("%s: size: %v", path, err)
	}
	for k, v := range f.Metadata {
		if m, ok := strings.CutPrefix(k, "meta."); ok {
			c.meta[m] = v
		}
	}
	for k, v := range f.Tensors {
		if m, ok := strings.CutPrefix(k, "model/"); ok {
			c.model[m] = v
		} else if s, ok := strings.CutPrefix(k, "sgd/"); ok {
			c.sgd[s] = v
		}
	}
	return c, nil
}

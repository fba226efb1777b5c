package quant

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/tensor"
)

// Metadata of an int8 checkpoint (besides the float checkpoint's format,
// variant, config, labels and preprocess).
const (
	MetaPrecision = "precision" // "int8"
	metaMethod    = "calibration_method"
	metaImages    = "calibration_images"
	metaFirst     = "float_first"
	metaScheme    = "quantization"
)

const scheme = "weights int8 symmetric per output channel [-127,127]; activations uint8 per tensor (q-zero)*scale; " +
	"biases int32 in scale input_scale*weight_scale; requantisation float32 multiplier, round half to even, saturate to [0,255]"

// Tensor names: an int8 convolution NAME stores NAME.weight (I8),
// NAME.weight_scale (F32, per output channel) and NAME.bias (I32); a
// float node stores its (folded) float tensors under its graph keys; every
// quantised value stores NAME.output_scale (F32) and
// NAME.output_zero_point (I32), NAME "input" for the image.

// IsInt8 reports whether the safetensors file at path is an int8 model
// (without reading its tensors).
func IsInt8(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var lb [8]byte
	if _, err := io.ReadFull(f, lb[:]); err != nil {
		return false
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > 100<<20 {
		return false
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return false
	}
	var h struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if json.Unmarshal(hdr, &h) != nil {
		return false
	}
	return h.Meta[MetaPrecision] == "int8"
}

func f32bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func i32bytes(x []int32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}

// Save writes the model atomically (no partial file on error).
func (m *Model) Save(path string) error {
	p := m.Preprocessing()
	g, err := m.Graph(p.Crop, p.Crop)
	if err != nil {
		return err
	}
	ts := map[string]safetensors.RawTensor{}
	for _, nd := range g.Nodes {
		if a, ok := m.Spec.Act[nd.Name]; ok {
			ts[nd.Name+".output_scale"] = safetensors.RawTensor{DType: safetensors.F32, Shape: []int{1}, Data: f32bytes([]float32{a.Scale})}
			ts[nd.Name+".output_zero_point"] = safetensors.RawTensor{DType: safetensors.I32, Shape: []int{1}, Data: i32bytes([]int32{a.Zero})}
		}
		if c, ok := m.Spec.Conv[nd.Name]; ok {
			w := make([]byte, len(c.W))
			for i, v := range c.W {
				w[i] = byte(v)
			}
			ts[nd.Tensors[0].Key] = safetensors.RawTensor{DType: safetensors.I8, Shape: nd.Tensors[0].Shape, Data: w}
			ts[nd.Name+".weight_scale"] = safetensors.RawTensor{DType: safetensors.F32, Shape: []int{len(c.WScale)}, Data: f32bytes(c.WScale)}
			ts[nd.Name+".bias"] = safetensors.RawTensor{DType: safetensors.I32, Shape: []int{len(c.Bias)}, Data: i32bytes(c.Bias)}
			continue
		}
		if fw, ok := m.Spec.Float[nd.Name]; ok {
			keys, shapes := floatKeys(nd)
			if len(keys) != len(fw) {
				return fmt.Errorf("quant: %s has %d float tensors, want %d", nd.Name, len(fw), len(keys))
			}
			for i, k := range keys {
				ts[k] = safetensors.RawTensor{DType: safetensors.F32, Shape: shapes[i], Data: f32bytes(fw[i])}
			}
		}
	}
	meta, err := m.metadata()
	if err != nil {
		return err
	}
	return safetensors.WriteRawFile(path, ts, meta)
}

// floatKeys names a float node's tensors: a convolution's folded weight
// and bias (NAME.weight, NAME.bias), a linear layer's or SE's own keys.
func floatKeys(nd *graph.Node) ([]string, [][]int) {
	if nd.Kind == graph.Conv {
		s := nd.Tensors[0].Shape
		return []string{nd.Tensors[0].Key, nd.Name + ".bias"}, [][]int{s, {s[0]}}
	}
	var keys []string
	var shapes [][]int
	for _, t := range nd.Tensors {
		keys = append(keys, t.Key)
		shapes = append(shapes, t.Shape)
	}
	return keys, shapes
}

func (m *Model) metadata() (map[string]string, error) {
	cfg, err := json.Marshal(m.Config)
	if err != nil {
		return nil, err
	}
	variant := m.Config.Name
	if variant == "" {
		variant = "custom"
	}
	meta := map[string]string{"format": "mobileone", "variant": variant, "fused": "true", "config": string(cfg),
		MetaPrecision: "int8", metaMethod: m.Method, metaImages: strconv.Itoa(m.Images),
		metaFirst: strconv.FormatBool(m.FloatFirst), metaScheme: scheme}
	if len(m.Labels) > 0 {
		l, _ := json.Marshal(m.Labels)
		meta["labels"] = string(l)
	}
	if m.Preprocess != nil {
		p, _ := json.Marshal(m.Preprocess)
		meta["preprocess"] = string(p)
	}
	return meta, nil
}

// Load reads an int8 model written by Save, checking every tensor's
// dtype and shape; a missing, unused or misshaped tensor is an error
// naming it.
func Load(path string) (*Model, error) {
	f, err := safetensors.ReadRawFile(path)
	if err != nil {
		return nil, err
	}
	m, err := fromRaw(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Source = path
	return m, nil
}

func fromRaw(f *safetensors.RawFile) (*Model, error) {
	meta := f.Metadata
	if meta[MetaPrecision] != "int8" {
		return nil, fmt.Errorf("not an int8 model (metadata %q is %q)", MetaPrecision, meta[MetaPrecision])
	}
	m := &Model{Method: meta[metaMethod], FloatFirst: meta[metaFirst] == "true"}
	m.Images, _ = strconv.Atoi(meta[metaImages])
	if err := json.Unmarshal([]byte(meta["config"]), &m.Config); err != nil {
		return nil, fmt.Errorf("metadata \"config\" is not valid JSON: %v", err)
	}
	if err := m.Config.Validate(); err != nil {
		return nil, err
	}
	if l, ok := meta["labels"]; ok {
		if err := json.Unmarshal([]byte(l), &m.Labels); err != nil {
			return nil, fmt.Errorf("metadata \"labels\" is not a JSON list of strings: %v", err)
		}
	}
	if p, ok := meta["preprocess"]; ok {
		m.Preprocess = new(imageproc.Params)
		if err := json.Unmarshal([]byte(p), m.Preprocess); err != nil {
			return nil, fmt.Errorf("metadata \"preprocess\" is not valid JSON: %v", err)
		}
		if m.Preprocess.Crop < 1 || m.Preprocess.Crop > 4096 {
			return nil, fmt.Errorf("metadata \"preprocess\" has a bad crop %d", m.Preprocess.Crop)
		}
	}
	p := m.Preprocessing()
	g, err := m.Graph(p.Crop, p.Crop)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	get := func(key string, dt safetensors.DType, shape []int) ([]byte, error) {
		t, ok := f.Tensors[key]
		if !ok {
			return nil, fmt.Errorf("missing tensor %q", key)
		}
		used[key] = true
		if t.DType != dt {
			return nil, fmt.Errorf("tensor %q has dtype %s, want %s", key, t.DType, dt)
		}
		if !slices.Equal(t.Shape, shape) {
			return nil, fmt.Errorf("tensor %q has shape %s, want %s", key, tensor.ShapeString(t.Shape), tensor.ShapeString(shape))
		}
		return t.Data, nil
	}
	f32 := func(key string, shape []int) ([]float32, error) {
		b, err := get(key, safetensors.F32, shape)
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			if math.IsNaN(float64(out[i])) || math.IsInf(float64(out[i]), 0) {
				return nil, fmt.Errorf("tensor %q holds a non-finite value", key)
			}
		}
		return out, nil
	}
	i32 := func(key string, shape []int) ([]int32, error) {
		b, err := get(key, safetensors.I32, shape)
		if err != nil {
			return nil, err
		}
		out := make([]int32, len(b)/4)
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out, nil
	}
	spec := &graph.Int8Spec{Act: map[string]graph.QParam{}, Conv: map[string]*graph.Int8Conv{}, Float: map[string][][]float32{}}
	for _, nd := range g.Nodes {
		if _, ok := f.Tensors[nd.Name+".output_scale"]; ok {
			s, err := f32(nd.Name+".output_scale", []int{1})
			if err != nil {
				return nil, err
			}
			z, err := i32(nd.Name+".output_zero_point", []int{1})
			if err != nil {
				return nil, err
			}
			if !(s[0] > 0) || z[0] < 0 || z[0] > 255 {
				return nil, fmt.Errorf("%s: output scale %v or zero point %d out of range", nd.Name, s[0], z[0])
			}
			spec.Act[nd.Name] = graph.QParam{Scale: s[0], Zero: z[0]}
		}
		switch nd.Kind {
		case graph.Conv:
			key := nd.Tensors[0].Key
			t, ok := f.Tensors[key]
			if ok && t.DType == safetensors.I8 {
				b, err := get(key, safetensors.I8, nd.Tensors[0].Shape)
				if err != nil {
					return nil, err
				}
				cout := nd.Tensors[0].Shape[0]
				c := &graph.Int8Conv{W: make([]int8, len(b))}
				for i, v := range b {
					c.W[i] = int8(v)
				}
				if c.WScale, err = f32(nd.Name+".weight_scale", []int{cout}); err != nil {
					return nil, err
				}
				for o, s := range c.WScale {
					if !(s > 0) {
						return nil, fmt.Errorf("tensor %q: scale %d is %v, want > 0", nd.Name+".weight_scale", o, s)
					}
				}
				if c.Bias, err = i32(nd.Name+".bias", []int{cout}); err != nil {
					return nil, err
				}
				spec.Conv[nd.Name] = c
				continue
			}
			fallthrough
		case graph.Linear, graph.SE:
			keys, shapes := floatKeys(nd)
			var fw [][]float32
			for i, k := range keys {
				v, err := f32(k, shapes[i])
				if err != nil {
					return nil, err
				}
				fw = append(fw, v)
			}
			spec.Float[nd.Name] = fw
		}
	}
	var unused []string
	for k := range f.Tensors {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		return nil, fmt.Errorf("unused tensors: %s", strings.Join(unused, ", "))
	}
	m.Spec = spec
	// The plan checks the rest (every int8 layer's input and output scales).
	if _, err := graph.NewInt8Plan(g, spec, 1); err != nil {
		return nil, err
	}
	return m, nil
}

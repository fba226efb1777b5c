package pth

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// storageClass is what the allow-listed torch.<X>Storage globals unpickle to.
type storageClass struct{ dt *dtype }

// storageRef is a checked reference to a data/<key> entry.
type storageRef struct {
	key   string
	dt    *dtype
	numel int64
	entry *entry
}

// tensorRef is an unmaterialised tensor: a view into a storage.
type tensorRef struct {
	st     *storageRef
	offset int
	shape  []int
	stride []int
}

// rebuildTensorV2 implements torch._utils._rebuild_tensor_v2 without torch.
type rebuildTensorV2 struct{}

// rebuildParameter implements torch._utils._rebuild_parameter.
type rebuildParameter struct{}

// Call takes (storage, storage_offset, size, stride, requires_grad,
// backward_hooks[, metadata]) and returns a *tensorRef; the view is checked
// against the storage when it is materialised.
func (rebuildTensorV2) Call(args ...interface{}) (interface{}, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, fmt.Errorf("pth: _rebuild_tensor_v2 takes 6 or 7 arguments, got %d", len(args))
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("pth: _rebuild_tensor_v2 storage argument is %s, not a storage", pyType(args[0]))
	}
	offset, ok := args[1].(int)
	if !ok || offset < 0 {
		return nil, fmt.Errorf("pth: _rebuild_tensor_v2 has a bad storage offset (%s)", pyType(args[1]))
	}
	shape, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(shape) != len(stride) {
		return nil, fmt.Errorf("pth: _rebuild_tensor_v2 size %s and stride %s differ in length", shapeString(shape), shapeString(stride))
	}
	if _, ok := args[4].(bool); !ok {
		return nil, fmt.Errorf("pth: _rebuild_tensor_v2 requires_grad is %s, not bool", pyType(args[4]))
	}
	return &tensorRef{st: st, offset: offset, shape: shape, stride: stride}, nil
}

// Call takes (data, requires_grad, backward_hooks) and returns data.
func (rebuildParameter) Call(args ...interface{}) (interface{}, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("pth: _rebuild_parameter takes 3 arguments, got %d", len(args))
	}
	t, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("pth: _rebuild_parameter data is %s, not a tensor", pyType(args[0]))
	}
	return t, nil
}

func intTuple(v interface{}, what string) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("pth: tensor %s is %s, not a tuple", what, pyType(v))
	}
	if len(*t) > maxDims {
		return nil, fmt.Errorf("pth: tensor %s has %d dimensions, more than %d", what, len(*t), maxDims)
	}
	out := make([]int, len(*t))
	for i, x := range *t {
		n, ok := x.(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("pth: tensor %s has a bad entry (%s)", what, pyType(x))
		}
		out[i] = n
	}
	return out, nil
}

// shapeString is tensor.ShapeString without importing it here.
func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// pyType names the Python type of an unpickled value, for error messages.
// It never formats the value itself (which may be huge or cyclic).
func pyType(v interface{}) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case *types.Tuple:
		return "tuple"
	case *types.List:
		return "list"
	case *types.Dict:
		return "dict"
	case *types.OrderedDict:
		return "OrderedDict"
	case *tensorRef:
		return "tensor"
	case *storageRef:
		return "storage"
	case *storageClass:
		return "storage type"
	}
	return fmt.Sprintf("%T", v)
}

// unpickle runs the (already scanned) pickle through gopickle with the
// allow-list and torch's persistent-id scheme, turning panics into errors.
func (a *archive) unpickle(pkl []byte) (result interface{}, err error) {
	if err := scanPickle(pkl); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			msg := strings.ReplaceAll(fmt.Sprint(r), "\n", " ")
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			result, err = nil, fmt.Errorf("pth: malformed data.pkl (unpickler failed: %s)", msg)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(pkl))
	u.FindClass = findClass
	u.PersistentLoad = a.persistentLoad
	result, err = u.Load()
	if err != nil {
		if strings.HasPrefix(err.Error(), "pth: ") {
			return nil, err
		}
		msg := strings.ReplaceAll(err.Error(), "\n", " ")
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return nil, fmt.Errorf("pth: malformed data.pkl: %s", msg)
	}
	return result, nil
}

// findClass resolves allow-listed globals; gopickle consults it only for
// names it does not handle itself, and scanPickle has already refused every
// name outside the allow-list, so this is a second line of defence.
func findClass(module, name string) (interface{}, error) {
	if !allowedGlobal(module, name) {
		return nil, globalError(module, name)
	}
	switch module {
	case "torch._utils":
		if name == "_rebuild_tensor_v2" {
			return rebuildTensorV2{}, nil
		}
		return rebuildParameter{}, nil
	case "torch":
		return &storageClass{dtypes[name]}, nil
	}
	return nil, globalError(module, name) // collections.OrderedDict is built into gopickle
}

// persistentLoad resolves ('storage', storage_type, key, location, numel).
func (a *archive) persistentLoad(pid interface{}) (interface{}, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || len(*t) != 5 {
		return nil, fmt.Errorf("pth: persistent id is %s, not a 5-tuple ('storage', type, key, location, numel)", pyType(pid))
	}
	if s, _ := (*t)[0].(string); s != "storage" {
		return nil, fmt.Errorf("pth: persistent id kind is not 'storage'")
	}
	sc, ok := (*t)[1].(*storageClass)
	if !ok {
		return nil, fmt.Errorf("pth: persistent id storage type is %s", pyType((*t)[1]))
	}
	key, ok := (*t)[2].(string)
	if !ok {
		return nil, fmt.Errorf("pth: persistent id storage key is %s, not str", pyType((*t)[2]))
	}
	numel, ok := (*t)[4].(int)
	if !ok || numel < 0 {
		return nil, fmt.Errorf("pth: storage data/%s has a bad element count (%s)", key, pyType((*t)[4]))
	}
	if st, ok := a.storages[key]; ok {
		if st.dt != sc.dt || st.numel != int64(numel) {
			return nil, fmt.Errorf("pth: storage data/%s is described two different ways", key)
		}
		return st, nil
	}
	if int64(numel) > MaxStorageBytes/int64(sc.dt.size) {
		return nil, fmt.Errorf("pth: storage data/%s holds %d elements, over the %d-byte limit", key, numel, int64(MaxStorageBytes))
	}
	name := a.prefix + "data/" + key
	e, ok := a.entries[name]
	if !ok {
		return nil, fmt.Errorf("pth: missing storage entry %q", "data/"+key)
	}
	want := uint64(numel) * uint64(sc.dt.size)
	if err := a.checkEntry(e, want); err != nil {
		return nil, err
	}
	st := &storageRef{key: key, dt: sc.dt, numel: int64(numel), entry: e}
	a.storages[key] = st
	return st, nil
}

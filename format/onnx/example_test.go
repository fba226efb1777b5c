package onnx_test

import (
	"bytes"
	"fmt"

	"github.com/mobileone-go/mobileone/format/onnx"
	"github.com/mobileone-go/mobileone/model"
)

// Export a fused S0 (here with zero weights) with a dynamic batch and a
// fixed 224×224 input, as ONNX Runtime runs it.
func ExampleExport() {
	cfg, _ := model.Variant("s0")
	m, _ := model.New(cfg, true) // or mobileone.Load(...).Model
	var buf bytes.Buffer
	if err := onnx.Export(&buf, m, onnx.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	mp, _ := onnx.Build(m, onnx.Options{})
	fmt.Println(len(mp.Graph.Node), "nodes,", len(mp.Graph.Initializer), "initializers")
	fmt.Println(mp.Graph.Node[0].GetName(), "→", mp.Graph.Node[len(mp.Graph.Node)-1].GetName())
	// Output:
	// 89 nodes, 88 initializers
	// stage0.reparam_conv → linear
}

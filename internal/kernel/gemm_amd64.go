//go:build amd64 && !purego

package kernel

//go:generate sh -c "cd _gen && go run ./gemm -pkg kernel -out ../gemm_amd64.s -stubs ../gemm_stub_amd64.go"

// haveAsm reports whether the assembly micro-kernels are linked in.
const haveAsm = true

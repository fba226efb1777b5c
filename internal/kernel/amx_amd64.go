//go:build amd64 && !purego

package kernel

//go:generate go -C _gen run ./amx -out ../amx_amd64.s -stubs ../amx_stub_amd64.go

// amxTilesCall runs the generated AMX tile kernel (amx_amd64.s).
func amxTilesCall(p *[14]uintptr) { amxTiles(p) }

// dpTilesCall runs the generated AVX512-BF16 kernel (amx_amd64.s).
func dpTilesCall(p *[14]uintptr) { dpbf16Tiles(p) }

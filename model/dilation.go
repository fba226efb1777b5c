package model

import "fmt"

// DenseStrides returns, for each block of Specs() (same order), the stride
// and dilation of a dense-prediction backbone with the given output stride
// (the input size over the last stage's map size): 32 is the
// classification network; 16 and 8 trade the last stage's (and for 8 also
// stage3's) downsampling for dilation, as DeepLabV3 does, by torchvision's
// ResNet rule (replace_stride_with_dilation):
//
//   - a dilated stage's first depthwise block (the stride-2 one) gets stride
//     1 and keeps the dilation in force before the stage (1 after an
//     undilated stage), since it reads the map at the resolution the
//     strided block read it;
//   - the dilation then doubles, and every later 3×3 block of the stage
//     gets it (1×1 blocks need none), with padding = dilation so maps keep
//     their size.
//
// So output stride 16 leaves stage4's blocks at dilation 1 (its first block
// is the stride-2 one; with more than one pair the later depthwise blocks
// get 2); 8 gives stage3's later depthwise blocks dilation 2 and stage4's
// first one 2, its later ones 4. The re-parameterisation is unchanged: a
// 1×1 or identity branch folds into the centre tap, which a dilated kernel
// keeps at offset 0. The stem (stage0) always keeps its stride.
func (c Config) DenseStrides(outputStride int) (stride, dilation []int, err error) {
	dilated := 0 // stages from the end that trade stride for dilation
	switch outputStride {
	case 32:
	case 16:
		dilated = 1
	case 8:
		dilated = 2
	default:
		return nil, nil, fmt.Errorf("output stride %d: want 8, 16 or 32", outputStride)
	}
	_, specs := c.Specs()
	stride = make([]int, len(specs))
	dilation = make([]int, len(specs))
	stride[0], dilation[0] = specs[0].Stride, 1
	d, i := 1, 1
	for s := 0; s < 4; s++ {
		dil := s >= 4-dilated
		for j := 0; j < 2*c.Blocks[s]; j++ {
			sp := specs[i]
			stride[i], dilation[i] = sp.Stride, 1
			if sp.K > 1 {
				dilation[i] = d
			}
			if dil && sp.Stride == 2 {
				stride[i] = 1 // dilation stays the one before the stage
				d *= 2
			}
			i++
		}
	}
	return stride, dilation, nil
}

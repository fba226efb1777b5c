// Package pth reads and writes PyTorch torch.save checkpoints in the zip
// format used since torch 1.6, without running any Python and without
// executing anything named by the file.
//
// # Format
//
// A checkpoint is a zip archive whose entries share one folder prefix (the
// archive name: "archive/" for files written to a buffer, the file stem
// otherwise):
//
//	<prefix>/data.pkl        the object graph, as a Python pickle
//	<prefix>/data/<key>      raw little-endian bytes of storage <key>
//	<prefix>/version         serialization format version ("3\n")
//	<prefix>/byteorder       optional, "little" or "big" (torch >= 2.0)
//
// Tensors appear in data.pkl as calls to torch._utils._rebuild_tensor_v2
// (storage, storage_offset, size, stride, requires_grad, backward_hooks
// [, metadata]), where storage is a persistent id
// ('storage', torch.FloatStorage, key, location, numel) naming the
// data/<key> entry. Load implements those calls itself: it checks every
// offset, size and stride against the storage, and materialises each tensor
// as a dense row-major float32 [tensor.Tensor], whatever its dtype or
// strides were.
//
// # Safety
//
// A pickle can name any Python callable; torch.load without weights_only
// would call it. This package never calls anything: before unpickling it
// walks every opcode of data.pkl and rejects any global that is not on a
// strict allow-list:
//
//	collections.OrderedDict
//	torch._utils._rebuild_tensor_v2
//	torch._utils._rebuild_parameter
//	torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage
//
// Anything else (os.system, builtins.eval, a pickled nn.Module class, ...)
// is an error naming it. The walk also bounds every length field by the
// size of data.pkl, so the unpickler never allocates more than the input
// justifies, and the unpickler itself runs under recover.
//
// Reads of zip entries are bounded by their declared sizes, which must agree
// with what the pickle says each storage holds, and by fixed caps
// (MaxStorageBytes per storage, MaxPickleBytes for data.pkl,
// MaxTensorElements per tensor).
//
// The legacy (torch < 1.6) non-zip format and TorchScript archives
// (torch.jit.save) are recognised and rejected with an explanation.
package pth

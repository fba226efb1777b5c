package pth

import (
	"encoding/binary"
	"fmt"
)

// maxMarkDepth bounds the nesting of unclosed MARKs in data.pkl; torch
// writes at most a handful.
const maxMarkDepth = 1000

// allowedGlobal reports whether module.name may appear in a checkpoint.
func allowedGlobal(module, name string) bool {
	switch module {
	case "collections":
		return name == "OrderedDict"
	case "torch._utils":
		return name == "_rebuild_tensor_v2" || name == "_rebuild_parameter"
	case "torch":
		_, ok := dtypes[name]
		return ok
	}
	return false
}

// globalError explains why module.name is refused.
func globalError(module, name string) error {
	if module == "torch" && len(name) > len("Storage") && name[len(name)-len("Storage"):] == "Storage" {
		return fmt.Errorf("pth: unsupported dtype: checkpoint uses storage %q", module+"."+name)
	}
	return fmt.Errorf("pth: checkpoint names disallowed global %q", module+"."+name)
}

// scanPickle walks every opcode of a pickle without building anything and
// rejects globals outside the allow-list, lengths running past the end of
// the data, and opcodes a state_dict never needs. Only after it passes is
// the pickle handed to the unpickler.
//
// STACK_GLOBAL (protocol 4) takes its names from the stack; it is accepted
// only when the two items below it are provably strings, i.e. were pushed by
// the two preceding stack-changing opcodes (string literals or memo fetches
// of string literals), with only memo stores or frames in between.
func scanPickle(p []byte) error {
	const (
		unknown = iota
		str
	)
	type memoVal struct {
		kind int
		s    string
	}
	memo := map[int]memoVal{} // mirrors gopickle's memo keys, for MEMOIZE indices
	var strs []string         // known strings on top of the stack, most recent last
	depth := 0

	pos := 0
	need := func(n uint64) ([]byte, error) {
		if n > uint64(len(p)-pos) {
			return nil, fmt.Errorf("pth: data.pkl is truncated or corrupt (opcode at byte %d needs %d bytes, %d left)", pos, n, len(p)-pos)
		}
		b := p[pos : pos+int(n)]
		pos += int(n)
		return b, nil
	}
	line := func() (string, error) {
		for i := pos; i < len(p); i++ {
			if p[i] == '\n' {
				s := string(p[pos:i])
				pos = i + 1
				return s, nil
			}
		}
		return "", fmt.Errorf("pth: data.pkl is truncated or corrupt (unterminated line at byte %d)", pos)
	}
	top := func() memoVal {
		if len(strs) > 0 {
			return memoVal{str, strs[len(strs)-1]}
		}
		return memoVal{}
	}
	pushStr := func(s string) {
		strs = append(strs, s)
		if len(strs) > 2 {
			strs = strs[1:]
		}
	}

	for {
		if pos >= len(p) {
			return fmt.Errorf("pth: data.pkl is truncated (no STOP opcode)")
		}
		at := pos
		op := p[pos]
		pos++
		keepStrs := false // true for opcodes that leave the stack untouched or push a known string
		switch op {
		case '.': // STOP
			return nil
		case '(': // MARK
			depth++
			if depth > maxMarkDepth {
				return fmt.Errorf("pth: data.pkl nests more than %d marks", maxMarkDepth)
			}
		case 't', 'l', 'd', 'e', 'u', '\x90', '\x91', '1', 'o': // pop to mark
			if depth > 0 {
				depth--
			}
		case '2', '0', 'N', 'R', 'a', 'b', '}', ']', 's', ')', '\x85', '\x86', '\x87',
			'\x88', '\x89', 'Q', '\x8f', '\x92', '\x81':
			// no argument
		case '\x80': // PROTO
			b, err := need(1)
			if err != nil {
				return err
			}
			if b[0] > 5 {
				return fmt.Errorf("pth: data.pkl uses unsupported pickle protocol %d", b[0])
			}
			keepStrs = true
		case '\x95': // FRAME
			b, err := need(8)
			if err != nil {
				return err
			}
			if n := binary.LittleEndian.Uint64(b); n > uint64(len(p)-pos) {
				return fmt.Errorf("pth: data.pkl is truncated or corrupt (frame of %d bytes, %d left)", n, len(p)-pos)
			}
			keepStrs = true
		case 'K', 'h', 'q':
			b, err := need(1)
			if err != nil {
				return err
			}
			switch op {
			case 'h':
				if v, ok := memo[int(b[0])]; ok && v.kind == str {
					pushStr(v.s)
					keepStrs = true
				}
			case 'q':
				memo[int(b[0])] = top()
				keepStrs = true
			}
		case 'M':
			if _, err := need(2); err != nil {
				return err
			}
		case 'J', 'j', 'r':
			b, err := need(4)
			if err != nil {
				return err
			}
			idx := int(binary.LittleEndian.Uint32(b))
			switch op {
			case 'j':
				if v, ok := memo[idx]; ok && v.kind == str {
					pushStr(v.s)
					keepStrs = true
				}
			case 'r':
				memo[idx] = top()
				keepStrs = true
			}
		case '\x94': // MEMOIZE
			memo[len(memo)] = top()
			keepStrs = true
		case 'G':
			if _, err := need(8); err != nil {
				return err
			}
		case 'U', 'C', '\x8c', '\x8a': // 1-byte length + data
			b, err := need(1)
			if err != nil {
				return err
			}
			if op == '\x8a' && b[0] == 0 {
				return fmt.Errorf("pth: data.pkl has an empty LONG1 at byte %d", at)
			}
			d, err := need(uint64(b[0]))
			if err != nil {
				return err
			}
			if op == '\x8c' {
				pushStr(string(d))
				keepStrs = true
			}
		case 'T', 'X', 'B', '\x8b': // 4-byte length + data
			b, err := need(4)
			if err != nil {
				return err
			}
			n := binary.LittleEndian.Uint32(b)
			if (op == 'T' || op == '\x8b') && int32(n) < 0 {
				return fmt.Errorf("pth: data.pkl has a negative length at byte %d", at)
			}
			if op == '\x8b' && n == 0 {
				return fmt.Errorf("pth: data.pkl has an empty LONG4 at byte %d", at)
			}
			d, err := need(uint64(n))
			if err != nil {
				return err
			}
			if op == 'X' {
				pushStr(string(d))
				keepStrs = true
			}
		case '\x8d', '\x8e', '\x96': // 8-byte length + data
			b, err := need(8)
			if err != nil {
				return err
			}
			d, err := need(binary.LittleEndian.Uint64(b))
			if err != nil {
				return err
			}
			if op == '\x8d' {
				pushStr(string(d))
				keepStrs = true
			}
		case 'F', 'I', 'L', 'S', 'V', 'g', 'p':
			s, err := line()
			if err != nil {
				return err
			}
			if (op == 'L' || op == 'I' || op == 'F') && len(s) > 1000 {
				return fmt.Errorf("pth: data.pkl has an over-long number at byte %d", at)
			}
			if op == 'p' || op == 'g' {
				var idx int
				if _, err := fmt.Sscanf(s, "%d", &idx); err != nil {
					return fmt.Errorf("pth: data.pkl has a bad memo index at byte %d", at)
				}
				if op == 'p' {
					memo[idx] = top()
					keepStrs = true
				} else if v, ok := memo[idx]; ok && v.kind == str {
					pushStr(v.s)
					keepStrs = true
				}
			}
		case 'c', 'i': // GLOBAL, INST: module and name on two lines
			module, err := line()
			if err != nil {
				return err
			}
			name, err := line()
			if err != nil {
				return err
			}
			if !allowedGlobal(module, name) {
				return globalError(module, name)
			}
			if op == 'i' {
				return fmt.Errorf("pth: data.pkl uses the INST opcode on %q, which a state_dict never needs", module+"."+name)
			}
		case '\x93': // STACK_GLOBAL
			if len(strs) != 2 {
				return fmt.Errorf("pth: data.pkl uses STACK_GLOBAL at byte %d on names that cannot be verified", at)
			}
			if !allowedGlobal(strs[0], strs[1]) {
				return globalError(strs[0], strs[1])
			}
		case 'P':
			return fmt.Errorf("pth: data.pkl uses a text persistent id, which torch.save never writes")
		case '\x82', '\x83', '\x84':
			return fmt.Errorf("pth: data.pkl uses the extension registry (EXT opcode), which is not allowed")
		case '\x97', '\x98':
			return fmt.Errorf("pth: data.pkl uses out-of-band buffers, which torch.save never writes")
		default:
			return fmt.Errorf("pth: data.pkl has unknown opcode 0x%02x at byte %d", op, at)
		}
		if !keepStrs {
			strs = strs[:0]
		}
	}
}

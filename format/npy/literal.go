package npy

import (
	"errors"
	"fmt"
	"strings"
)

// A tiny parser for the Python literals that appear in .npy headers:
// dicts, tuples, lists, strings, integers, True, False and None.

type (
	pyDict  map[string]any
	pyTuple []any
	pyList  []any
	pyNone  struct{}
	// pyInt is a non-negative magnitude with a sign; overflow is set when
	// the magnitude does not fit in 63 bits.
	pyInt struct {
		v        uint64
		neg      bool
		overflow bool
	}
)

const maxDepth = 16

type parser struct {
	s []byte
	i int
}

func (p *parser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20]
	}
	return string(r)
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r', '\x00':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	p.skipSpace()
	if p.i >= len(p.s) {
		return nil, errors.New("unexpected end")
	}
	c := p.s[p.i]
	switch {
	case c == '{':
		p.i++
		d := pyDict{}
		for {
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return d, nil
			}
			k, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, errors.New("dict key is not a string")
			}
			p.skipSpace()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, fmt.Errorf("missing ':' after key '%s'", ks)
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if _, dup := d[ks]; dup {
				return nil, fmt.Errorf("duplicate key '%s'", ks)
			}
			d[ks] = v
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return d, nil
			}
			return nil, errors.New("expected ',' or '}' in dict")
		}
	case c == '(' || c == '[':
		closer := byte(')')
		if c == '[' {
			closer = ']'
		}
		p.i++
		var elems []any
		sawComma := false
		for {
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == closer {
				p.i++
				break
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			elems = append(elems, v)
			p.skipSpace()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				sawComma = true
				continue
			}
			if p.i < len(p.s) && p.s[p.i] == closer {
				p.i++
				break
			}
			return nil, fmt.Errorf("expected ',' or '%c'", closer)
		}
		if c == '[' {
			return pyList(elems), nil
		}
		if len(elems) == 1 && !sawComma {
			return elems[0], nil // parenthesised expression, not a tuple
		}
		return pyTuple(elems), nil
	case c == '\'' || c == '"':
		q := c
		p.i++
		var b strings.Builder
		for p.i < len(p.s) {
			ch := p.s[p.i]
			p.i++
			switch ch {
			case q:
				return b.String(), nil
			case '\\':
				if p.i >= len(p.s) {
					return nil, errors.New("unterminated string")
				}
				b.WriteByte(p.s[p.i])
				p.i++
			case '\n':
				return nil, errors.New("newline in string")
			default:
				b.WriteByte(ch)
			}
		}
		return nil, errors.New("unterminated string")
	case c == '-' || c == '+' || c >= '0' && c <= '9':
		var n pyInt
		if c == '-' || c == '+' {
			n.neg = c == '-'
			p.i++
		}
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			d := uint64(p.s[p.i] - '0')
			if n.v > (1<<63-1-d)/10 {
				n.overflow = true
			} else if !n.overflow {
				n.v = n.v*10 + d
			}
			p.i++
		}
		if p.i == start {
			return nil, errors.New("sign without digits")
		}
		// Python 2 long suffix, as in old files: (3L, 4L).
		if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') {
			p.i++
		}
		return n, nil
	default:
		start := p.i
		for p.i < len(p.s) && (p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] == '_') {
			p.i++
		}
		switch string(p.s[start:p.i]) {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return pyNone{}, nil
		}
		p.i = start
		return nil, fmt.Errorf("unexpected %q", p.rest())
	}
}

// pyTupleString formats a parsed shape tuple for error messages.
func pyTupleString(t pyTuple) string {
	parts := make([]string, len(t))
	for i, e := range t {
		switch v := e.(type) {
		case pyInt:
			switch {
			case v.overflow && v.neg:
				parts[i] = "-huge"
			case v.overflow:
				parts[i] = "huge"
			case v.neg && v.v != 0:
				parts[i] = fmt.Sprintf("-%d", v.v)
			default:
				parts[i] = fmt.Sprint(v.v)
			}
		default:
			parts[i] = "?"
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

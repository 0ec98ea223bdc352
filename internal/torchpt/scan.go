package torchpt

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Limits on what a pickle may ask for before it is handed to the unpickler
// (gopickle allocates whatever length an opcode states).
const (
	maxNumberLine = 4096 // a decimal number (INT, LONG, FLOAT, GET, PUT)
	maxLongBytes  = 4096 // a binary long (LONG4)
)

// argKind says how an opcode's argument is laid out in the stream.
type argKind int

const (
	argNone     argKind = iota
	argFixed            // a fixed number of bytes
	argLine             // one newline-terminated line
	argTwoLines         // GLOBAL: module and name lines
	argLen1             // 1-byte length, then that many bytes
	argLen4             // 4-byte little-endian length, then that many bytes
	argLen8             // 8-byte little-endian length, then that many bytes
)

type opInfo struct {
	name string
	kind argKind
	size int // argFixed: bytes; argLine: longest line allowed (0: any)
}

// dataOps are the opcodes a torch.save pickle may contain: literals,
// containers, memo, marks, persistent ids, GLOBAL/STACK_GLOBAL (checked
// against allowedGlobals) and REDUCE. Object-building opcodes (INST, OBJ,
// NEWOBJ, NEWOBJ_EX, BUILD), extension registries and out-of-band buffers
// are absent: torch.save never writes them for tensors and plain data.
var dataOps = map[byte]opInfo{
	'(': {"MARK", argNone, 0}, '.': {"STOP", argNone, 0}, '0': {"POP", argNone, 0},
	'1': {"POP_MARK", argNone, 0}, '2': {"DUP", argNone, 0}, 'N': {"NONE", argNone, 0},
	'R': {"REDUCE", argNone, 0}, 'Q': {"BINPERSID", argNone, 0}, 'a': {"APPEND", argNone, 0},
	'd': {"DICT", argNone, 0}, '}': {"EMPTY_DICT", argNone, 0}, 'e': {"APPENDS", argNone, 0},
	'l': {"LIST", argNone, 0}, ']': {"EMPTY_LIST", argNone, 0}, 's': {"SETITEM", argNone, 0},
	't': {"TUPLE", argNone, 0}, ')': {"EMPTY_TUPLE", argNone, 0}, 'u': {"SETITEMS", argNone, 0},
	0x85: {"TUPLE1", argNone, 0}, 0x86: {"TUPLE2", argNone, 0}, 0x87: {"TUPLE3", argNone, 0},
	0x88: {"NEWTRUE", argNone, 0}, 0x89: {"NEWFALSE", argNone, 0}, 0x8f: {"EMPTY_SET", argNone, 0},
	0x90: {"ADDITEMS", argNone, 0}, 0x91: {"FROZENSET", argNone, 0}, 0x93: {"STACK_GLOBAL", argNone, 0},
	0x94: {"MEMOIZE", argNone, 0},
	'K':  {"BININT1", argFixed, 1}, 'h': {"BINGET", argFixed, 1}, 'q': {"BINPUT", argFixed, 1},
	0x80: {"PROTO", argFixed, 1}, 'M': {"BININT2", argFixed, 2}, 'J': {"BININT", argFixed, 4},
	'j': {"LONG_BINGET", argFixed, 4}, 'r': {"LONG_BINPUT", argFixed, 4}, 'G': {"BINFLOAT", argFixed, 8},
	0x95: {"FRAME", argFixed, 8},
	'F':  {"FLOAT", argLine, maxNumberLine}, 'I': {"INT", argLine, maxNumberLine},
	'L': {"LONG", argLine, maxNumberLine}, 'g': {"GET", argLine, maxNumberLine},
	'p': {"PUT", argLine, maxNumberLine}, 'S': {"STRING", argLine, 0}, 'V': {"UNICODE", argLine, 0},
	'P': {"PERSID", argLine, 0}, 'c': {"GLOBAL", argTwoLines, 0},
	'U': {"SHORT_BINSTRING", argLen1, 0}, 'C': {"SHORT_BINBYTES", argLen1, 0},
	0x8a: {"LONG1", argLen1, 0}, 0x8c: {"SHORT_BINUNICODE", argLen1, 0},
	'T': {"BINSTRING", argLen4, 0}, 'X': {"BINUNICODE", argLen4, 0}, 'B': {"BINBYTES", argLen4, 0},
	0x8b: {"LONG4", argLen4, maxLongBytes},
	0x8d: {"BINUNICODE8", argLen8, 0}, 0x8e: {"BINBYTES8", argLen8, 0},
}

// forbiddenOps names the opcodes that are valid pickle but not data.
var forbiddenOps = map[byte]string{
	'b': "BUILD", 'i': "INST", 'o': "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX",
	0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

// scan walks the opcodes of a pickle without executing any: every opcode
// must be a data opcode, every GLOBAL an allowed one, every stated length
// within the stream, and the stream must end in STOP.
func scan(p []byte) error {
	for pos := 0; pos < len(p); {
		op := p[pos]
		info, ok := dataOps[op]
		if !ok {
			if name, bad := forbiddenOps[op]; bad {
				return fmt.Errorf("pickle opcode %s at byte %d is not allowed: only data opcodes (no object building, extensions or out-of-band buffers)", name, pos)
			}
			return fmt.Errorf("unknown pickle opcode 0x%02x at byte %d", op, pos)
		}
		at := pos
		pos++
		rest := p[pos:]
		switch info.kind {
		case argFixed:
			if len(rest) < info.size {
				return fmt.Errorf("pickle opcode %s at byte %d: stream ends inside its %d-byte argument", info.name, at, info.size)
			}
			if op == 0x95 && binary.LittleEndian.Uint64(rest) > uint64(len(rest)-8) {
				return fmt.Errorf("pickle opcode FRAME at byte %d: frame of %d bytes, but only %d follow", at, binary.LittleEndian.Uint64(rest), len(rest)-8)
			}
			pos += info.size
		case argLine, argTwoLines:
			lines := 1
			if info.kind == argTwoLines {
				lines = 2
			}
			var parts []string
			for range lines {
				i := bytes.IndexByte(p[pos:], '\n')
				if i < 0 {
					return fmt.Errorf("pickle opcode %s at byte %d: stream ends before its newline", info.name, at)
				}
				if info.size > 0 && i > info.size {
					return fmt.Errorf("pickle opcode %s at byte %d: argument of %d bytes, expected at most %d", info.name, at, i, info.size)
				}
				parts = append(parts, string(p[pos:pos+i]))
				pos += i + 1
			}
			if op == 'c' {
				if !allowedGlobal(parts[0], parts[1]) {
					return forbiddenGlobal(parts[0], parts[1])
				}
			}
		case argLen1, argLen4, argLen8:
			width := map[argKind]int{argLen1: 1, argLen4: 4, argLen8: 8}[info.kind]
			if len(rest) < width {
				return fmt.Errorf("pickle opcode %s at byte %d: stream ends inside its length", info.name, at)
			}
			var n uint64
			switch width {
			case 1:
				n = uint64(rest[0])
			case 4:
				n = uint64(binary.LittleEndian.Uint32(rest))
			default:
				n = binary.LittleEndian.Uint64(rest)
			}
			if n > uint64(len(rest)-width) {
				return fmt.Errorf("pickle opcode %s at byte %d: states %d bytes, but only %d follow", info.name, at, n, len(rest)-width)
			}
			if info.size > 0 && n > uint64(info.size) {
				return fmt.Errorf("pickle opcode %s at byte %d: %d bytes, expected at most %d", info.name, at, n, info.size)
			}
			if op == 0x8a && n == 0 {
				return fmt.Errorf("pickle opcode LONG1 at byte %d: empty long", at)
			}
			pos += width + int(n)
		}
		if op == '.' {
			return nil
		}
	}
	return fmt.Errorf("pickle ends without STOP")
}

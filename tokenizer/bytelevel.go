package tokenizer

import "unicode/utf8"

// GPT-2's byte-to-unicode table: printable Latin-1 bytes map to themselves,
// the other 68 bytes to U+0100 onwards, so that every byte is a visible
// character in the vocabulary.
var (
	byteToRune [256]rune
	// byteToString[b] is string(byteToRune[b]).
	byteToString [256]string
	runeToByte   = map[rune]byte{}
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		byteToString[b] = string(byteToRune[b])
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteLevelEncode maps every byte of s to its byte-level character.
func byteLevelEncode(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = utf8.AppendRune(dst, byteToRune[s[i]])
	}
	return dst
}

// byteLevelDecodeToken maps a token's characters back to bytes; a token with
// a character outside the table is kept as its own UTF-8 bytes (as the
// tokenizers ByteLevel decoder does).
func byteLevelDecodeToken(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}

// appendLossyUTF8 appends b to dst, replacing each maximal invalid
// subsequence by U+FFFD exactly as Rust's String::from_utf8_lossy does.
func appendLossyUTF8(dst []byte, b []byte) []byte {
	for len(b) > 0 {
		r, w := utf8.DecodeRune(b)
		if r != utf8.RuneError || w > 1 {
			dst = append(dst, b[:w]...)
			b = b[w:]
			continue
		}
		// Skip the longest prefix of a valid sequence (1 to 3 bytes).
		dst = append(dst, "\uFFFD"...)
		b = b[invalidPrefixLen(b):]
	}
	return dst
}

// invalidPrefixLen returns how many bytes of b (which does not start a valid
// UTF-8 sequence) form one "maximal subpart" in the Unicode sense.
func invalidPrefixLen(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			return i
		}
		lo, hi = 0x80, 0xBF
	}
	return i
}

package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// jsonScanner is a minimal JSON reader used for the large parts of a
// tokenizer.json (the vocabulary and the merges), where encoding/json's
// reflection costs most of the load time. It walks a byte slice and reports
// errors with the byte offset at which the input stopped making sense.
type jsonScanner struct {
	data []byte
	pos  int
}

// errJSON is wrapped by every error the scanner returns.
var errJSON = errors.New("malformed JSON")

func (s *jsonScanner) fail(expected string) error {
	if s.pos >= len(s.data) {
		return fmt.Errorf("%w: expected %s at offset %d, found end of input", errJSON, expected, s.pos)
	}
	return fmt.Errorf("%w: expected %s at offset %d, found %q", errJSON, expected, s.pos, s.data[s.pos])
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it (0 at the end).
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return s.fail(strconv.QuoteRune(rune(c)))
	}
	s.pos++
	return nil
}

// readString reads a JSON string and returns it unescaped.
func (s *jsonScanner) readString() (string, error) {
	if s.peek() != '"' {
		return "", s.fail("a string")
	}
	s.pos++
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if c == '"' {
			str := string(s.data[start:s.pos])
			s.pos++
			return str, nil
		}
		if c == '\\' {
			return s.readEscapedString(start)
		}
		if c < 0x20 {
			return "", s.fail("a string character")
		}
		s.pos++
	}
	return "", s.fail("a closing quote")
}

// readStringView is readString without a copy when the string has no
// escapes: the result then aliases the scanner's data, which must stay
// unmodified while the string is in use.
func (s *jsonScanner) readStringView() (string, error) {
	if s.peek() != '"' {
		return "", s.fail("a string")
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		c := s.data[i]
		if c == '"' {
			s.pos = i + 1
			if i == start {
				return "", nil
			}
			return unsafe.String(&s.data[start], i-start), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	return s.readString()
}

// readEscapedString continues readString once an escape was seen.
func (s *jsonScanner) readEscapedString(start int) (string, error) {
	buf := make([]byte, 0, s.pos-start+16)
	buf = append(buf, s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return string(buf), nil
		case c < 0x20:
			return "", s.fail("a string character")
		case c != '\\':
			buf = append(buf, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.data) {
			s.pos++
			return "", s.fail("an escape character")
		}
		esc := s.data[s.pos+1]
		s.pos += 2
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := s.readHex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
					save := s.pos
					s.pos += 2
					low, err := s.readHex4()
					if err != nil {
						return "", err
					}
					if dec := utf16.DecodeRune(r, low); dec != utf8.RuneError {
						r2 = dec
					} else {
						s.pos = save
					}
				}
				if r2 < 0 {
					r = utf8.RuneError
				} else {
					r = r2
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			s.pos -= 1
			return "", s.fail("a valid escape character")
		}
	}
	return "", s.fail("a closing quote")
}

func (s *jsonScanner) readHex4() (rune, error) {
	if s.pos+4 > len(s.data) {
		return 0, s.fail("4 hex digits")
	}
	var r rune
	for i := 0; i < 4; i++ {
		c := s.data[s.pos+i]
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			s.pos += i
			return 0, s.fail("a hex digit")
		}
		r = r<<4 | rune(v)
	}
	s.pos += 4
	return r, nil
}

// readInt reads a JSON number that must be a non-negative integer that fits
// in an int32 (token ids).
func (s *jsonScanner) readInt() (int, error) {
	s.skipSpace()
	start := s.pos
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		n = n*10 + int(s.data[s.pos]-'0')
		if n > 1<<31-1 {
			return 0, s.fail("an id below 2^31")
		}
		s.pos++
	}
	if s.pos == start {
		return 0, s.fail("a non-negative integer")
	}
	if s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '.', 'e', 'E':
			return 0, s.fail("an integer")
		}
	}
	return n, nil
}

// readObject calls field for every key of an object; field must consume the
// value.
func (s *jsonScanner) readObject(field func(key string) error) error {
	return s.readMembers(false, field)
}

// readObjectViews is readObject with keys from readStringView: they may
// alias the scanner's data and must be copied to be kept.
func (s *jsonScanner) readObjectViews(field func(key string) error) error {
	return s.readMembers(true, field)
}

// readMembers reads an object, calling field for every key (read by
// readStringView when views, else by readString); field must consume the
// value.
func (s *jsonScanner) readMembers(views bool, field func(key string) error) error {
	more, err := s.openSequence('{', '}')
	for more && err == nil {
		var key string
		if views {
			key, err = s.readStringView()
		} else {
			key, err = s.readString()
		}
		if err == nil {
			err = s.expect(':')
		}
		if err == nil {
			err = field(key)
		}
		if err == nil {
			more, err = s.nextInSequence('}')
		}
	}
	return err
}

// readArray calls elem for every element of an array; elem must consume it.
func (s *jsonScanner) readArray(elem func() error) error {
	more, err := s.openSequence('[', ']')
	for more && err == nil {
		if err = elem(); err == nil {
			more, err = s.nextInSequence(']')
		}
	}
	return err
}

// openSequence consumes the open bracket of an object or an array, and the
// close bracket too when it is empty; more reports whether an element follows.
func (s *jsonScanner) openSequence(open, close byte) (more bool, err error) {
	if err := s.expect(open); err != nil {
		return false, err
	}
	if s.peek() == close {
		s.pos++
		return false, nil
	}
	return true, nil
}

// nextInSequence consumes what follows an element of an object or an array:
// a ',' (more reports true) or the close bracket.
func (s *jsonScanner) nextInSequence(close byte) (more bool, err error) {
	switch s.peek() {
	case ',':
		s.pos++
		return true, nil
	case close:
		s.pos++
		return false, nil
	}
	return false, s.fail("',' or '" + string(close) + "'")
}

// skipValue consumes any JSON value and returns its raw bytes.
func (s *jsonScanner) skipValue() ([]byte, error) {
	c := s.peek()
	start := s.pos
	var err error
	switch {
	case c == '{':
		err = s.readObject(func(string) error { _, e := s.skipValue(); return e })
	case c == '[':
		err = s.readArray(func() error { _, e := s.skipValue(); return e })
	case c == '"':
		err = s.skipString()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		s.pos++
		for s.pos < len(s.data) {
			d := s.data[s.pos]
			if (d >= '0' && d <= '9') || d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-' {
				s.pos++
				continue
			}
			break
		}
	default:
		err = s.fail("a JSON value")
	}
	if err != nil {
		return nil, err
	}
	return s.data[start:s.pos], nil
}

func (s *jsonScanner) literal(word string) error {
	if s.pos+len(word) > len(s.data) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.fail(word)
	}
	s.pos += len(word)
	return nil
}

// atEnd reports whether only white space is left.
func (s *jsonScanner) atEnd() bool {
	s.skipSpace()
	return s.pos >= len(s.data)
}

// skipString consumes a string without building it.
func (s *jsonScanner) skipString() error {
	if s.peek() != '"' {
		return s.fail("a string")
	}
	s.pos++
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			s.pos++
			return nil
		case c == '\\':
			s.pos += 2
		case c < 0x20:
			return s.fail("a string character")
		default:
			s.pos++
		}
	}
	return s.fail("a closing quote")
}

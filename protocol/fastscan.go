package protocol

// A hand-written JSON scanner for the hot path (SEND frames). It accepts
// exactly the JSON grammar encoding/json accepts (RFC 8259; inside strings
// every byte >= 0x20 except '"' and '\' stands for itself, as in
// encoding/json's scanner) and reports where each value starts and ends.
// It never decides an error: whenever it meets anything it does not handle
// (invalid JSON, nesting deeper than fastScanDepthMax, a key that
// encoding/json might match case-insensitively) the caller falls back to
// the encoding/json decoder, which stays the reference and produces every
// *Error. So the fast path only has to be right about inputs it accepts,
// and the differential fuzz test (fastdecode_test.go) checks exactly that.

// fastScanDepthMax bounds the nesting depth (objects and arrays) the fast
// scanner follows; deeper values go to encoding/json (limit 10,000).
const fastScanDepthMax = 64

func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(data []byte, i int) int {
	for i < len(data) && isJSONSpace(data[i]) {
		i++
	}
	return i
}

// scanValue returns the end of the JSON value starting at data[i] (no
// leading whitespace), or -1 if it is not one the fast scanner accepts.
func scanValue(data []byte, i, depth int) int {
	if i >= len(data) {
		return -1
	}
	switch c := data[i]; {
	case c == '"':
		end, _ := scanString(data, i)
		return end
	case c == '{':
		return scanObject(data, i, depth+1)
	case c == '[':
		return scanArray(data, i, depth+1)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(data, i)
	case c == 't':
		return scanLiteral(data, i, "true")
	case c == 'f':
		return scanLiteral(data, i, "false")
	case c == 'n':
		return scanLiteral(data, i, "null")
	}
	return -1
}

func scanLiteral(data []byte, i int, literal string) int {
	if len(data)-i < len(literal) || string(data[i:i+len(literal)]) != literal {
		return -1
	}
	return i + len(literal)
}

// scanString returns the end of the string token starting at data[i] (the
// index after its closing quote) and whether it contains a backslash, or
// -1 if it is not a valid string token.
func scanString(data []byte, i int) (end int, escaped bool) {
	i++ // opening quote
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			return i + 1, escaped
		case c < 0x20:
			return -1, false
		case c == '\\':
			escaped = true
			i++
			if i >= len(data) {
				return -1, false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(data)-i < 5 {
					return -1, false
				}
				for _, h := range data[i+1 : i+5] {
					if !isHexDigit(h) {
						return -1, false
					}
				}
				i += 5
			default:
				return -1, false
			}
		default:
			i++
		}
	}
	return -1, false
}

func isHexDigit(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber follows the JSON number grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data) || !isDigit(data[i]):
		return -1
	case data[i] == '0':
		i++
	default:
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return -1
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return -1
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
	}
	return i
}

func scanObject(data []byte, i, depth int) int {
	if depth > fastScanDepthMax {
		return -1
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return -1
		}
		if i, _ = scanString(data, i); i < 0 {
			return -1
		}
		i = skipSpace(data, i)
		if i >= len(data) || data[i] != ':' {
			return -1
		}
		i = skipSpace(data, i+1)
		if i = scanValue(data, i, depth); i < 0 {
			return -1
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return -1
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

func scanArray(data []byte, i, depth int) int {
	if depth > fastScanDepthMax {
		return -1
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return i + 1
	}
	for {
		if i = scanValue(data, i, depth); i < 0 {
			return -1
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return -1
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case ']':
			return i + 1
		default:
			return -1
		}
	}
}

package gateway

// hasDotSegment reports a "." or ".." path segment, also percent-encoded,
// which an upstream could resolve into a path no route was checked for.
func hasDotSegment(p []byte) bool {
	seg := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		s := p[seg:i]
		seg = i + 1
		if isDots(s) {
			return true
		}
	}
	return false
}

func isDots(s []byte) bool {
	dots := 0
	for len(s) > 0 {
		switch {
		case s[0] == '.':
			s = s[1:]
		case len(s) >= 3 && s[0] == '%' && s[1] == '2' && (s[2] == 'e' || s[2] == 'E'):
			s = s[3:]
		default:
			return false
		}
		dots++
	}
	return dots == 1 || dots == 2
}

package admin

import "testing"

// FuzzParseHealthResponse: the gRPC probe decodes what the app sends by hand; any bytes either
// yield a status or an error, never a panic or a read past the message.
func FuzzParseHealthResponse(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 2, 8, 1})
	f.Add([]byte{0, 0, 0, 0, 3, 18, 0xff, 0xff})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseHealthResponse(data)
	})
}

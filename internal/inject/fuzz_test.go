package inject

import (
	"errors"
	"testing"
)

// FuzzAnnotations: any value of any podgate annotation, on the pod or its namespace, either
// injects or is a denial (*Error) naming a problem; never a panic, never another error.
func FuzzAnnotations(f *testing.F) {
	for i := range Annotations {
		f.Add(uint8(i), "x", false)
		f.Add(uint8(i), "", true)
	}
	f.Add(uint8(0), "8080,8080,http,,-1,65536", false)
	f.Fuzz(func(t *testing.T, which uint8, value string, onNamespace bool) {
		key := Annotations[int(which)%len(Annotations)].Key
		pod := validPod()
		ns := enabledNS(nil)
		if onNamespace {
			ns.Annotations = map[string]string{key: value}
		} else {
			pod.Annotations[key] = value
		}
		_, _, err := Inject(pod, ns, testConfig())
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) || len(e.Problems) == 0 {
			t.Fatalf("%s=%q: %v is not a denial naming a problem", key, value, err)
		}
	})
}

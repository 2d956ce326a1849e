package cache

import (
	"testing"
	"time"
)

func TestBoundedAndExpiring(t *testing.T) {
	c := New[int](10)
	now := time.Now()
	for i := range 100 {
		var k [32]byte
		k[0], k[1] = byte(i), byte(i>>8)
		c.Put(k, i, now.Add(time.Hour), now)
		if c.Len() > 10 {
			t.Fatalf("cache grew to %d", c.Len())
		}
	}
	var k [32]byte
	k[5] = 1
	c.Put(k, 7, now.Add(time.Minute), now)
	if v, ok := c.Get(k, now); !ok || v != 7 {
		t.Fatalf("fresh entry: %v %v", v, ok)
	}
	if _, ok := c.Get(k, now.Add(2*time.Minute)); ok {
		t.Error("expired entry served")
	}
}

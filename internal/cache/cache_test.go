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

func TestBoundedByBytes(t *testing.T) {
	c := NewBytes[string](1000, 10_000)
	now := time.Now()
	for i := range 200 {
		var k [32]byte
		k[0], k[1] = byte(i), byte(i>>8)
		c.PutSized(k, "v", 900, now.Add(time.Hour), now)
		if c.Bytes() > 10_000 {
			t.Fatalf("cache holds %d bytes, bound 10000", c.Bytes())
		}
	}
	var big [32]byte
	big[9] = 1
	c.PutSized(big, "huge", 5_000, now.Add(time.Hour), now)
	if _, ok := c.Get(big, now); ok {
		t.Error("an entry of half the budget was cached")
	}
	var k [32]byte
	k[7] = 1
	c.PutSized(k, "a", 100, now.Add(time.Hour), now)
	before := c.Bytes()
	c.PutSized(k, "b", 300, now.Add(time.Hour), now) // replacing counts the new size only
	if c.Bytes() != before+200 {
		t.Errorf("replace: %d bytes, want %d", c.Bytes(), before+200)
	}
	c.Delete(k)
	if _, ok := c.Get(k, now); ok || c.Bytes() != before-100 {
		t.Errorf("delete: present %v, %d bytes, want %d", ok, c.Bytes(), before-100)
	}
}

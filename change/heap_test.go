package change

import "testing"

func TestHeapBytes(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{-1, 0}, {0, 0}, {1, 8}, {8, 8}, {9, 16}, {33, 48}, {1025, 1152},
		{32768, 32768}, {32769, 40960}} {
		if got := HeapBytes(tc.n); got != tc.want {
			t.Errorf("HeapBytes(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

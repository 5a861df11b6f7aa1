package change

// sizeClasses are the Go allocator's size classes up to 32 KiB
// (internal/runtime/gc.SizeClassToSize): an allocation takes the smallest
// class that holds it.
var sizeClasses = [...]int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
	2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// HeapBytes is the heap an allocation of n bytes takes. The stages that
// bound their memory by an estimate (cdc's queue of decoded batches, the
// mapper's state) count rows this way, so that the bound holds for the
// heap and not only for the bytes the source sent.
func HeapBytes(n int) int {
	if n <= 0 {
		return 0
	}
	if n > 32768 {
		return (n + 8191) &^ 8191 // whole pages
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if sizeClasses[mid] < n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return sizeClasses[lo]
}

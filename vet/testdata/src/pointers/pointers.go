// Package pointers holds the pointer-address findings.
package pointers

import (
	"fmt"
	"log"
	"reflect"
	"unsafe" // want `import of unsafe`
)

type Thing struct{ ID int }

func addresses(thing *Thing, value reflect.Value) uintptr {
	label := fmt.Sprintf("thing %p", thing) // want `fmt.Sprintf with %p prints a pointer address`
	fmt.Printf("%-8p\n", thing)             // want `fmt.Printf with %p`
	log.Printf("%[1]p %[1]v", thing)        // want `log.Printf with %p`
	_ = fmt.Errorf("id %d", thing.ID)
	_ = fmt.Sprintf("100%% %v", thing.ID)
	_ = label
	_ = value.Pointer()    // want `reflect.Value.Pointer: the address is chosen by the allocator`
	_ = value.UnsafeAddr() // want `reflect.Value.UnsafeAddr`
	// Pointers as map keys are fine; iterating such a map is reported anyway.
	byPointer := map[*Thing]int{thing: 1}
	_ = byPointer[thing]
	return uintptr(unsafe.Pointer(thing)) // want `conversion of a pointer to uintptr: the address is chosen by the allocator`
}

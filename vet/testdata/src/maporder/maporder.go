// Package maporder holds the map-order findings and their allowed forms.
package maporder

import (
	"maps"
	"reflect"
	"slices"
	"sort"
)

func rangeOverMap(scores map[string]int) int {
	total := 0
	for name, score := range scores { // want `range over map scores: Go randomizes map iteration order .* for _, k := range slices.Sorted\(maps.Keys\(scores\)\)`
		total += len(name) * score
	}
	for range scores { // want `range over map scores`
		total++
	}
	return total
}

type Registry map[int]string

func rangeOverNamedMap(registry Registry) (last string) {
	for _, value := range registry { // want `range over map registry`
		last = value
	}
	return last
}

func rangeOverGenericMap[M ~map[K]V, K comparable, V any](m M) (count int) {
	for range m { // want `range over map m`
		count++
	}
	return count
}

func unsortedSequences(m map[string]int) []string {
	for key := range maps.Keys(m) { // want `maps.Keys yields entries in map order: .*; use slices.Sorted\(maps.Keys\(m\)\)`
		_ = key
	}
	values := slices.Collect(maps.Values(m)) // want `maps.Values yields entries in map order`
	_ = values
	for k, v := range maps.All(m) { // want `maps.All yields entries in map order`
		_, _ = k, v
	}
	return slices.Collect(maps.Keys(m)) // want `maps.Keys yields entries in map order`
}

func reflection(value reflect.Value) {
	keys := value.MapKeys() // want `reflect.Value.MapKeys: Go randomizes map iteration order`
	_ = keys
	iterator := value.MapRange() // want `reflect.Value.MapRange`
	_ = iterator
}

// Deterministic forms: sorted keys, slices, arrays, strings, integers and
// order-independent consumers of map sequences.
func allowed(m map[string]int, list []int, array [3]int, text string) int {
	total := 0
	for _, key := range slices.Sorted(maps.Keys(m)) {
		total += m[key]
	}
	for _, key := range slices.SortedFunc(maps.Keys(m), func(a, b string) int { return len(a) - len(b) }) {
		total += m[key]
	}
	copied := maps.Collect(maps.All(m))
	maps.Insert(copied, maps.All(m))
	for index, value := range list {
		total += index * value
	}
	for _, value := range array {
		total += value
	}
	for _, r := range text {
		total += int(r)
	}
	for i := range 10 {
		total += i
	}
	for value := range slices.Values(list) {
		total += value
	}
	keys := []string{"b", "a"}
	sort.Strings(keys)
	return total + len(copied) + m["a"]
}

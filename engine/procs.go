package engine

import "runtime"

func goMaxProcs() int { return runtime.GOMAXPROCS(0) }

package dataset

//go:generate go run gen_embedded.go

module github.com/mobileone-go/mobileone

go 1.26.0

require (
	github.com/nlpodyssey/gopickle v0.3.0 // indirect
	golang.org/x/image v0.48.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

package authz

import (
	"crypto/x509"
	"math/big"
	"time"
)

var zeroTime time.Time

func bigSerial(i int) *x509.Certificate {
	return &x509.Certificate{SerialNumber: new(big.Int).Lsh(big.NewInt(int64(i+1)), 64)}
}

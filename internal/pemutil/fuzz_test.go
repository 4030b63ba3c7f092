package pemutil

import (
	"bytes"
	"testing"

	"github.com/certgate/certgate/internal/keytype"
)

// fuzzMaxIterations keeps each fuzz input under a millisecond or so of
// PBKDF2; the exported limit is exercised by TestDecryptPrivateKeyRefuses.
const fuzzMaxIterations = 2000

func seedFiles(f *testing.F, names ...string) {
	for _, n := range names {
		f.Add(readFile(f, n))
	}
}

func FuzzParseCertificates(f *testing.F) {
	a, b := selfSigned(f, "a"), selfSigned(f, "b")
	f.Add(EncodeCertificates(a))
	f.Add(EncodeCertificates(a, b))
	f.Add(append([]byte("junk\n"), EncodeCertificates(a)...))
	f.Add(append(EncodeCertificates(a), "junk"...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nK: v\n\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificates(data)
		if err != nil {
			if certs != nil {
				t.Fatal("certificates returned with an error")
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("no certificates and no error")
		}
		again, err := ParseCertificates(EncodeCertificates(certs...))
		if err != nil || len(again) != len(certs) {
			t.Fatalf("re-encoding does not parse: %v", err)
		}
	})
}

func FuzzParseCSR(f *testing.F) {
	der := csrDER(f)
	f.Add(EncodeCSR(der))
	f.Add(pemBlock("NEW CERTIFICATE REQUEST", der))
	f.Add(append(EncodeCSR(der), EncodeCSR(der)...))
	f.Add(EncodeCertificates(selfSigned(f, "a")))
	f.Add([]byte("not pem"))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if csr != nil {
				t.Fatal("request returned with an error")
			}
			return
		}
		again, err := ParseCSR(EncodeCSR(csr.Raw))
		if err != nil || !bytes.Equal(again.Raw, csr.Raw) {
			t.Fatalf("re-encoding does not parse: %v", err)
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	for _, kt := range []keytype.Type{keytype.ECDSAP256, keytype.Ed25519, keytype.RSA2048} {
		b, err := EncodePrivateKey(testKey(f, kt))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seedFiles(f, "testdata/legacy-proc-type.key.pem")
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParsePrivateKey(data)
		if err != nil {
			if key != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		if _, err := EncodePrivateKey(key); err != nil {
			t.Fatalf("parsed key does not encode: %v", err)
		}
	})
}

func FuzzDecryptPrivateKey(f *testing.F) {
	plain, err := EncodePrivateKey(testKey(f, keytype.ECDSAP256))
	if err != nil {
		f.Fatal(err)
	}
	b, err := decodeOne(plain, TypePrivateKey)
	if err != nil {
		f.Fatal(err)
	}
	pw := []byte(testPassphrase)
	f.Add(buildEncrypted(f, b.Bytes, pw, encOpts{}), pw)
	f.Add(buildEncrypted(f, b.Bytes, pw, encOpts{cipher: oidAES128CBC, keySize: 16, noPRF: true}), pw)
	f.Add(buildEncrypted(f, b.Bytes, pw, encOpts{}), []byte("wrong"))
	f.Add(buildEncrypted(f, []byte("not a key"), pw, encOpts{iter: 1}), pw)
	f.Add(plain, pw)
	for _, n := range []string{"pbes1-md5-des", "pkcs12-sha1-3des", "scrypt", "pbes2-des-ede3"} {
		f.Add(readFile(f, "testdata/"+n+".key.pem"), []byte("fixture passphrase"))
	}
	f.Fuzz(func(t *testing.T, data, passphrase []byte) {
		key, err := decryptPrivateKey(data, passphrase, fuzzMaxIterations)
		if err != nil {
			if key != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		if _, err := EncodePrivateKey(key); err != nil {
			t.Fatalf("decrypted key does not encode: %v", err)
		}
	})
}

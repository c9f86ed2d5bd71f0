// Input for nn-tie-parameters.test: parameters whose file does not exist.
nn.parameter @a : tensor<4xf32> at "no-such-file.bin"[0, 16]
nn.parameter @b : tensor<4xf32> at "no-such-file.bin"[16, 16]

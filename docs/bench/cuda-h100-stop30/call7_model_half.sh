# Call 7 (stop 30): model half 1 and the test binary t35 (att_mma the default).
set -u
mkdir -p /root/m /root/b /root/w
cp .gpu1/part.00 /root/m/ && cp .gpu1/*.safetensors .gpu1/a128.v14.cpu.lmgc /root/w/
find / -xdev \( -name 'libcublas.so*' -o -name 'libnvrtc.so*' \) 2>/dev/null | xargs -n1 dirname | sort -u | grep -v stubs | paste -sd: > /root/m/ldpath
export LD_LIBRARY_PATH=$(cat /root/m/ldpath)
xz -dc .gpu1/t35.xz > /root/b/t35 && chmod +x /root/b/t35
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader

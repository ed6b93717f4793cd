set -u
mkdir -p /root/m /root/b /root/w
cp .gpu1/part.00 /root/m/ && cp .gpu1/*.safetensors .gpu1/a128.v14.cpu.lmgc /root/w/
find / -xdev \( -name 'libcublas.so*' -o -name 'libnvrtc.so*' \) 2>/dev/null | xargs -n1 dirname | sort -u | grep -v stubs | paste -sd: > /root/m/ldpath
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; cat /root/m/ldpath; ls -la /root/m /root/b /root/w

set -u
cat /root/m/part.00 .gpu2/part.01 > /root/m/model.gguf && rm /root/m/part.00
sha256sum /root/m/model.gguf | grep -q '^b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53' && echo "model sha ok"
mkdir -p /root/.cache/lmgc/models && mv /root/m/model.gguf /root/.cache/lmgc/models/SmolLM2-135M-Instruct.Q4_1.gguf

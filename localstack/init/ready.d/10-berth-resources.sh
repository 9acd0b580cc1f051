#!/usr/bin/env bash
# LocalStack init hook (READY stage): creates the S3 bucket and DynamoDB table Berth's AWS-side tests use, with the
# settings infra/template.yaml gives the deployed ones. Runs inside the LocalStack container with awslocal; to run it
# against another endpoint, set AWS, e.g. AWS="aws --endpoint-url http://127.0.0.1:4599".
set -euo pipefail

read -r -a aws <<<"${AWS:-awslocal}"
bucket="${BERTH_TEST_BUCKET:-berth-test}"
table="${BERTH_TEST_TABLE:-berth-test}"
# The tests use these credentials and region; in LocalStack the key id selects the account, so they must match.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

# Settings that change no behaviour an emulator reproduces are best-effort: a warning if the emulator refuses them.
optional() {
    "$@" || echo "berth init: warning: not applied (unsupported by this emulator?): ${*:${#aws[@]}+1:2}" >&2
}

# --- S3 bucket ---------------------------------------------------------------------------------------------------
if ! "${aws[@]}" s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
    "${aws[@]}" s3api create-bucket --bucket "$bucket" >/dev/null
fi
optional "${aws[@]}" s3api put-public-access-block --bucket "$bucket" \
    --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
optional "${aws[@]}" s3api put-bucket-ownership-controls --bucket "$bucket" \
    --ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'
optional "${aws[@]}" s3api put-bucket-encryption --bucket "$bucket" \
    --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
"${aws[@]}" s3api put-bucket-lifecycle-configuration --bucket "$bucket" --lifecycle-configuration '{"Rules":[
    {"ID":"abort-incomplete-multipart-uploads","Status":"Enabled","Filter":{"Prefix":""},
     "AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}},
    {"ID":"expire-upload-staging","Status":"Enabled","Filter":{"Prefix":"uploads/"},"Expiration":{"Days":2}}]}'

# --- DynamoDB table ----------------------------------------------------------------------------------------------
if ! "${aws[@]}" dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
    "${aws[@]}" dynamodb create-table --table-name "$table" \
        --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
        --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
        --billing-mode PAY_PER_REQUEST >/dev/null
    "${aws[@]}" dynamodb wait table-exists --table-name "$table"
fi
ttl="$("${aws[@]}" dynamodb describe-time-to-live --table-name "$table" --output text \
    --query 'TimeToLiveDescription.[TimeToLiveStatus,AttributeName]')"
if [[ $ttl != $'ENABLED\texpires_at' ]]; then
    "${aws[@]}" dynamodb update-time-to-live --table-name "$table" \
        --time-to-live-specification Enabled=true,AttributeName=expires_at >/dev/null
fi
optional "${aws[@]}" dynamodb update-continuous-backups --table-name "$table" \
    --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true >/dev/null
optional "${aws[@]}" dynamodb update-table --table-name "$table" --sse-specification Enabled=true,SSEType=KMS >/dev/null

echo "berth init: bucket $bucket and table $table ready"

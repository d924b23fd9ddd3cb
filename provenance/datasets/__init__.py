"""Training sets as people publish them (img2dataset's files / webdataset / parquet outputs, Hugging Face
`datasets` Parquet with an Image feature, metadata manifests, plain folders): recognised, split into shards and
read row by row as a stream. Pure: no Django, no database."""
